package replicate

import (
	"context"

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
	states, stats, err := w.Syncer.BulkState(ctx, t, rps)
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
