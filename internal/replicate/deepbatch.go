package replicate

import (
	"context"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// deepBatches runs the deep checks of due, replicas on backup srv, in
// batches of at most w.Batch (one rsync dry run each): a replica found
// sound is recorded so; the others, and every replica of a batch whose
// run failed, are returned for the check of each on its own (which looks
// again under the repository's lock, then repairs).
func (w *Workers) deepBatches(ctx context.Context, srv store.Server, due []store.Job) []store.Job {
	t := transfer.TargetOf(srv)
	var alone []store.Job
	for len(due) > 0 && ctx.Err() == nil {
		n := min(len(due), max(w.Batch, 1))
		part := due[:n]
		due = due[n:]
		rps := make([]names.RepoPath, len(part))
		for i, j := range part {
			rps[i], _ = names.ParseRepoPath(j.Repo)
		}
		found, err := w.Syncer.CheckBatch(ctx, t, rps, true)
		if err != nil {
			if ctx.Err() == nil {
				w.Log.Warn().Err(err).Str("target", srv.Name).Int("replicas", n).Msg("deep check of a batch; checking each alone")
			}
			alone = append(alone, part...)
			continue
		}
		for _, j := range part {
			d, ok := found[j.Repo]
			if !ok || !d.OK() {
				alone = append(alone, j)
				continue
			}
			if err := w.Store.SetDeepCheck(ctx, j.RepoID, srv.ID, time.Now(), ""); err != nil {
				w.Log.Error().Err(err).Str("repo", j.Repo).Str("target", srv.Name).Msg("record deep check")
			}
		}
		w.Log.Debug().Str("target", srv.Name).Int("replicas", n).Msg("deep check of a batch")
	}
	return append(alone, due...)
}
