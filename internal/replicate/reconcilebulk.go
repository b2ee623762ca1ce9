package replicate

import (
	"context"
	"sync"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// reconcileBulk judges the replicas of todo on backup srv from one answer
// of the backup (transfer.BulkState): a replica that is missing or whose
// refs differ is queued, one whose object files are lacking is checked
// and repaired on its own, and nothing else costs an ssh command. It
// returns the jobs the answer could not settle (all of them when there
// was no usable answer), for the check of each on its own.
func (w *Workers) reconcileBulk(ctx context.Context, srv store.Server, todo []store.Job, snaps map[string]transfer.Snapshot, tally *reconcileTally) []store.Job {
	t := transfer.TargetOf(srv)
	rps := make([]names.RepoPath, 0, len(todo))
	for _, j := range todo {
		rp, _ := names.ParseRepoPath(j.Repo)
		rps = append(rps, rp)
	}
	// The local snapshots are read while the backup answers.
	done := make(chan struct{})
	go func() { defer close(done); w.prefetchSnapshots(ctx, rps, snaps) }()
	states, stats, err := w.Syncer.BulkState(ctx, t, rps)
	<-done
	if err != nil {
		if ctx.Err() == nil {
			w.Log.Warn().Err(err).Str("target", srv.Name).Msg("bulk state; checking each replica on its own")
		}
		return todo
	}
	if stats.Ignored > 0 {
		w.Log.Warn().Str("target", srv.Name).Int("lines", stats.Ignored).Str("first", printable.Line(stats.FirstIg)).
			Msg("bulk state names what the server should not hold; ignored")
	}
	var alone []store.Job
	for _, j := range todo {
		if ctx.Err() != nil {
			return nil
		}
		st, held := states[j.Repo]
		if held && st.Unjudged {
			alone = append(alone, j)
			continue
		}
		rp, _ := names.ParseRepoPath(j.Repo)
		snap, ok := w.localSnapshot(ctx, rp, snaps)
		if !ok {
			continue
		}
		tally.checked++
		switch {
		case !held || st.Fingerprint != snap.Only(t.Refs).Fingerprint:
			w.markStale(ctx, srv, j, tally)
		case !st.ObjectsOK && w.checkAndRepair(ctx, srv, j, rp, false):
			tally.repaired++
		}
	}
	return alone
}

// snapshotReaders is how many local ref snapshots a pass reads at once:
// each is a git process, mostly waiting on the disk.
const snapshotReaders = 4

// prefetchSnapshots fills snaps with the local ref snapshots of rps that
// it lacks, a few at a time; one that cannot be read is left out (the
// pass tries it again and skips it).
func (w *Workers) prefetchSnapshots(ctx context.Context, rps []names.RepoPath, snaps map[string]transfer.Snapshot) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan names.RepoPath)
	for range snapshotReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rp := range next {
				if snap, err := w.snapshot(ctx, rp); err == nil {
					mu.Lock()
					snaps[rp.String()] = snap
					mu.Unlock()
				}
			}
		}()
	}
	for _, rp := range rps {
		mu.Lock()
		_, have := snaps[rp.String()]
		mu.Unlock()
		if !have && ctx.Err() == nil {
			next <- rp
		}
	}
	close(next)
	wg.Wait()
}
