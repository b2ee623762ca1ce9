package replicate

import (
	"context"
	"path/filepath"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Maintain runs a maintenance pass (MaintainOnce) every interval until
// ctx ends.
func (w *Workers) Maintain(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.MaintainOnce(ctx)
	}
}

// MaintainOnce repacks every repository (in a cluster, every one this
// node is primary of) and prunes its replicas, unless a pass is running
// already: in this process, or in another on the same data directory
// (cpm-shell serve and cpm-shell replicate both run the workers). It
// reports whether it ran. A pass over N repositories reads the queue
// once and runs git only where something changed since the last pass.
func (w *Workers) MaintainOnce(ctx context.Context) bool {
	if !w.maintaining.CompareAndSwap(false, true) {
		w.Log.Info().Str("held_by", "this process").Msg("maintenance skipped: a pass is running")
		return false
	}
	defer w.maintaining.Store(false)
	unlock, held, err := transfer.TryLockFile(filepath.Join(w.Syncer.LockDir, "maintenance.lock"), false)
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: take the pass's lock")
		return false
	}
	if !held {
		w.Log.Info().Str("held_by", "another process").Msg("maintenance skipped: a pass is running")
		return false
	}
	defer unlock()
	w.maintainPass(ctx)
	return true
}

// passCounts sums up one pass for its log event.
type passCounts struct {
	repos, unchanged, repacked, pruned, failed int
}

func (w *Workers) maintainPass(ctx context.Context) {
	start := time.Now()
	repos, err := w.Store.Repos(ctx, "")
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: list repositories")
		return
	}
	targets, err := w.pruneTargetsByRepo(ctx)
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: read the queue")
		return
	}
	var n passCounts
	for _, r := range repos {
		if ctx.Err() != nil {
			break
		}
		if !w.mine(r.PrimaryID) {
			continue // a replica here: its primary repacks, and the sync brings the packs
		}
		n.repos++
		w.maintainRepo(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, targets[r.FullName()], &n)
	}
	w.Log.Info().Int("repos", n.repos).Int("unchanged", n.unchanged).Int("repacked", n.repacked).
		Int("pruned", n.pruned).Int("failed", n.failed).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("maintenance pass")
}

// maintainRepo tidies, repacks and prunes one repository.
func (w *Workers) maintainRepo(ctx context.Context, repo names.RepoPath, targets []remote.Target, n *passCounts) {
	w.tidy(repo)
	start := time.Now()
	res, err := w.Syncer.Repack(ctx, repo)
	// A repository left as it was is counted in the pass's event, not
	// logged on its own: 50,000 lines an hour would say nothing.
	ev := w.Log.Info()
	switch {
	case err != nil:
		n.failed++
		ev = w.Log.Warn().Err(err)
	case res.Unchanged:
		n.unchanged++
		ev = w.Log.Debug()
	default:
		n.repacked++
	}
	ev.Str("repo", repo.String()).Bool("unchanged", res.Unchanged).Int("removed", res.Removed).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("repack")
	// A replica holds what the source no longer has only when the repack
	// removed files, or a push brought files a replica may have got
	// another way (a cluster's pack sent ahead); a prune that found the
	// replica behind is owed until it succeeds.
	for _, t := range targets {
		key := repo.String() + "\x00" + t.Name
		if err != nil || (res.Removed == 0 && !res.Pushed && !w.pruneOwed[key]) {
			continue
		}
		if w.pruneTarget(ctx, repo, t) {
			n.pruned++
			delete(w.pruneOwed, key)
		} else {
			if w.pruneOwed == nil {
				w.pruneOwed = map[string]bool{}
			}
			w.pruneOwed[key] = true
		}
	}
}

// tidy removes what interrupted pushes left in repo, with a log event.
func (w *Workers) tidy(repo names.RepoPath) {
	age := w.StaleAge
	if age <= 0 {
		age = 24 * time.Hour
	}
	removed, bytes, err := w.Syncer.Tidy(repo, age)
	if err != nil {
		w.Log.Warn().Err(err).Str("repo", repo.String()).Msg("tidy")
	}
	if len(removed) > 0 {
		w.Log.Info().Str("repo", repo.String()).Int("removed", len(removed)).Int64("bytes", bytes).
			Str("first", removed[0]).Msg("tidy: removed what interrupted pushes left")
	}
}

// pruneTargetsByRepo reads the queue once for a whole pass: for each
// repository, the targets whose replica of it is current, in scope and
// not blocked. The others get their turn after their next sync.
func (w *Workers) pruneTargetsByRepo(ctx context.Context) (map[string][]remote.Target, error) {
	jobs, err := w.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]store.Server, len(servers))
	for _, srv := range servers {
		byID[srv.ID] = srv
	}
	out := map[string][]remote.Target{}
	for _, j := range jobs {
		srv, ok := byID[j.ServerID]
		// Out of scope, a replica is left alone: pruning sends objects.
		if !ok || !j.Done() || srv.BlockedReason != "" || transfer.CheckScope(srv, j.Repo) != nil {
			continue
		}
		out[j.Repo] = append(out[j.Repo], transfer.TargetOf(srv))
	}
	return out, nil
}

// pruneTarget prunes repo's replica on t, with a log event; it reports
// whether the prune succeeded.
func (w *Workers) pruneTarget(ctx context.Context, repo names.RepoPath, t remote.Target) bool {
	res, err := w.Syncer.PruneTarget(ctx, repo, t)
	ev := w.Log.Info()
	if err != nil {
		ev = w.Log.Warn().Err(err)
	}
	ev.Str("repo", repo.String()).Str("target", t.Name).Int64("bytes", res.Bytes).Msg("prune replica")
	return err == nil
}
