package hook

import (
	"context"
	"errors"
	"fmt"
	"io"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/queue"
	"cpm/internal/store"
	"cpm/internal/syncack"
	"cpm/internal/wake"
)

// Replicate queues an accepted push for replication and, on a cluster's
// primary, waits until replica nodes hold it (sync_replicas, asked of
// the node's workers through syncack) before git acknowledges it: what
// they answer goes to the client ("replicated to NODE", or a warning). A
// push this node took after it lost its lease or the repository's
// primary role is not recorded, only left as a marker: it stays on this
// disk, to be kept under refs/cpm/diverged if another node took over,
// and the client is told.
// Nothing here fails the push: it has happened.
func Replicate(ctx context.Context, st *store.Store, dir datadir.Dir, repo names.RepoPath, getenv func(string) string, out io.Writer) {
	dbctx, cancel := withDatabaseDeadline(ctx)
	defer cancel()
	w, err := WriterOf(dbctx, st, dir, repo, getenv)
	if err != nil {
		// Not known to be unfenced: a marker only, never a record
		// that skips the fence.
		warnUnrecorded(out, err)
		queue.Enqueue(ctx, nil, dir, repo)
		countUnreplicated(ctx, dir, repo)
		return
	}
	if !w.Fenced() {
		queue.Enqueue(ctx, st, dir, repo)
		return
	}
	rctx, rcancel := context.WithTimeout(ctx, RecordTimeout)
	defer rcancel()
	gen, err := st.MarkDirtyAs(rctx, repo.Org, repo.Repo, w)
	switch {
	case errors.Is(err, store.ErrFenced), errors.Is(err, store.ErrNotPrimary):
		why := "this node lost its lease during the push"
		if errors.Is(err, store.ErrNotPrimary) {
			why = "another node took the repository over during the push"
		}
		fmt.Fprintf(out, "cpm: warning: %s: %s: the push is on this node's disk only, not replicated; "+
			"it will be kept under refs/cpm/diverged/ when this node rejoins; push again\n", repo, why)
		// A marker too: after a short outage with no election this node
		// is still the primary, and the push must reach the replicas.
		queue.Enqueue(ctx, nil, dir, repo)
		countUnreplicated(ctx, dir, repo)
		return
	case err != nil:
		warnUnrecorded(out, err)
		queue.Enqueue(ctx, nil, dir, repo) // a marker: the workers queue it later
		countUnreplicated(ctx, dir, repo)
		return
	}
	ans, err := syncack.Ask(ctx, dir.SyncSocket(), syncack.Request{Repo: repo.String(), Generation: gen, Epoch: w.Epoch})
	if err != nil {
		ans.Warning = "not yet replicated to another node (" + err.Error() + "); it will be copied when a replica answers"
		countUnreplicated(ctx, dir, repo)
	}
	for _, node := range ans.Replicated {
		fmt.Fprintf(out, "replicated to %s\n", printable.Line(node))
	}
	if ans.Warning != "" {
		fmt.Fprintf(out, "cpm: warning: %s\n", printable.Line(ans.Warning))
	}
	wake.Work(dir.WakeSocket())
}

// warnUnrecorded tells the client of a push that this primary could not
// record (the database out of reach: most often the very reason this node
// is about to lose its lease) that no replica holds it: it is
// acknowledged all the same, git having moved the refs already, and is
// either copied later or, if another node takes over meanwhile, kept
// under refs/cpm/diverged/ when this one rejoins.
func warnUnrecorded(out io.Writer, err error) {
	fmt.Fprintf(out, "cpm: warning: not yet replicated to another node (%s); it will be copied once this node reaches the database, or kept under refs/cpm/diverged/ if another node takes over\n",
		printable.Line(err.Error()))
}

// countUnreplicated tells the node's workers, over the same socket, of a
// push acknowledged with a warning that they did not answer themselves,
// so that cpm_push_unreplicated_total counts every such push. Best
// effort: workers that do not answer count nothing.
func countUnreplicated(ctx context.Context, dir datadir.Dir, repo names.RepoPath) {
	syncack.Ask(ctx, dir.SyncSocket(), syncack.Request{Repo: repo.String(), Unreplicated: true})
}
