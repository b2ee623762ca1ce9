package replicate

import (
	"context"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// DefaultBatch is how many jobs for one backup a batched transfer takes
// at most: enough that ssh and rsync start-up no longer dominate, few
// enough that the locks and files a batch holds stay bounded.
const DefaultBatch = 100

// claimBatch adds to job, just claimed, more due jobs of the same backup
// under the same claim, for one batched transfer; it returns them all
// (job among them), or nil when job goes alone: a neighbour's or node's
// (metadata, diverged refs and the fast path are per repository), or one
// that failed last time (retried alone, so that its fault is its own).
func (w *Workers) claimBatch(ctx context.Context, job store.Job, srv store.Server) []store.Job {
	if w.Batch <= 1 || srv.Role != store.Backup || job.Attempts > 0 || job.Owner == "" {
		return nil
	}
	jobs, err := w.Store.ClaimBatch(ctx, job.Owner, w.Self, w.Lease, srv.ID, w.Batch-1)
	if err != nil {
		w.Log.Error().Err(err).Str("target", srv.Name).Msg("claim a batch")
		return nil
	}
	return jobs
}

// runBatch syncs jobs, all for backup srv and under one claim: the small
// repositories in one batched transfer, the others alone after it. Each
// job's outcome is recorded as run records it.
func (w *Workers) runBatch(ctx context.Context, jobs []store.Job, srv store.Server) {
	start := time.Now()
	defer w.keepBatchLease(ctx, jobs[0])()
	t := transfer.TargetOf(srv)
	var batched, alone []store.Job
	var items []*transfer.BatchItem
	var gens []int64
	for _, j := range jobs {
		rp, err := names.ParseRepoPath(j.Repo)
		if err != nil || transfer.CheckScope(srv, j.Repo) != nil || !w.Syncer.Batchable(rp, t) {
			alone = append(alone, j)
			continue
		}
		// Read before the ref snapshot, as run does.
		g, err := w.Store.RepoGeneration(ctx, j.RepoID)
		if err != nil {
			alone = append(alone, j)
			continue
		}
		batched, gens = append(batched, j), append(gens, g)
		items = append(items, &transfer.BatchItem{Repo: rp})
	}
	for _, j := range batched {
		w.Log.Info().Str("repo", j.Repo).Str("target", j.Server).Bool("fresh", j.LastSuccessAt.IsZero()).
			Int("attempts", j.Attempts).Int("batch", len(batched)).Msg("sync started")
	}
	var times transfer.BatchTimes
	if len(items) > 0 {
		times = w.Syncer.SyncBatch(ctx, t, items)
	}
	failed := 0
	for i, j := range batched {
		if items[i].Busy {
			// Locked by another (a handover may be waiting on it): it
			// goes alone after the batch, waiting for its lock there.
			alone = append(alone, j)
			continue
		}
		if items[i].Err != nil {
			failed++
		}
		w.finish(ctx, j, srv, start, gens[i], items[i].Result, items[i].Err, len(batched))
	}
	if len(items) > 0 {
		w.Log.Info().Str("target", srv.Name).Int("repos", len(items)).Int("failed", failed).Int("alone", len(alone)).
			Int64("lock_ms", times.Lock.Milliseconds()).Int64("stage_ms", times.Stage.Milliseconds()).
			Int64("send_ms", times.Send.Milliseconds()).Int64("verify_ms", times.Verify.Milliseconds()).
			Int64("duration_ms", time.Since(start).Milliseconds()).Msg("sync batch")
	}
	for _, j := range alone {
		w.run(ctx, j, srv)
	}
}

// keepBatchLease renews the leases of every job of first's claim while
// the batch runs; the returned func stops it. A job whose lease ran out
// meanwhile is another worker's now: Done and Failed refuse to record it.
func (w *Workers) keepBatchLease(ctx context.Context, first store.Job) (stop func()) {
	return w.renewing(ctx, func(ctx context.Context) bool {
		if _, err := w.Store.RenewBatch(ctx, first.Owner, w.Lease); err != nil && ctx.Err() == nil {
			w.Log.Warn().Err(err).Str("target", first.Server).Msg("renew the leases of a batch")
		}
		return true
	})
}
