package replicate

import (
	"context"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// reconcile compares the replicas of every server whose interval
// (server set --every) has passed with their sources, and queues those
// that differ: drift from any cause (a lost file, a hand edit, a missed
// push) is repaired without a push.
func (w *Workers) reconcile(ctx context.Context) {
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return
	}
	var jobs []store.Job
	// A repository's refs are read once per pass, however many servers
	// hold it.
	snaps := map[string]transfer.Snapshot{}
	for _, srv := range servers {
		last := srv.ReconciledAt
		if last.IsZero() {
			last = srv.CreatedAt // a new server was just copied in full
		}
		if time.Since(last) < time.Duration(srv.EverySeconds)*time.Second || !w.eligible(srv) {
			continue
		}
		if jobs == nil {
			if jobs, err = w.Store.Jobs(ctx); err != nil {
				return
			}
		}
		if !w.reconcileServer(ctx, srv, jobs, snaps) {
			return
		}
	}
}

// reconcileServer checks srv's replicas of done jobs against snaps
// (filled as needed); it returns false when ctx ended. A backup is asked
// once for the state of all its replicas (reconcileBulk); a replica the
// answer cannot settle, and every replica on a neighbour or node, is
// asked on its own.
func (w *Workers) reconcileServer(ctx context.Context, srv store.Server, jobs []store.Job, snaps map[string]transfer.Snapshot) bool {
	start := time.Now()
	var tally reconcileTally
	var todo []store.Job
	for _, j := range jobs {
		if j.ServerID != srv.ID || !j.Done() || !w.mine(j.PrimaryID) || transfer.CheckScope(srv, j.Repo) != nil {
			continue
		}
		if _, err := names.ParseRepoPath(j.Repo); err == nil {
			todo = append(todo, j)
		}
	}
	bulk := srv.Role == store.Backup && len(todo) > 0
	if bulk {
		todo = w.reconcileBulk(ctx, srv, todo, snaps, &tally)
	}
	for _, j := range todo {
		if !w.reconcileOne(ctx, srv, j, snaps, &tally) {
			return false
		}
	}
	if ctx.Err() != nil {
		return false
	}
	if err := w.Store.SetReconciled(ctx, srv.ID, start); err != nil {
		w.Log.Error().Err(err).Str("target", srv.Name).Msg("record reconciliation")
	}
	w.Log.Info().Str("target", srv.Name).Int("checked", tally.checked).Int("stale", tally.stale).Int("repaired", tally.repaired).
		Bool("bulk", bulk).Int("alone", len(todo)).Int64("duration_ms", time.Since(start).Milliseconds()).Msg("reconcile")
	return true
}

// reconcileTally counts what a pass found on one server.
type reconcileTally struct{ checked, stale, repaired int }

// reconcileOne checks one replica on its own: its refs with one ssh
// command, its object files with an rsync dry run. It returns false when
// ctx ended.
func (w *Workers) reconcileOne(ctx context.Context, srv store.Server, j store.Job, snaps map[string]transfer.Snapshot, tally *reconcileTally) bool {
	t := transfer.TargetOf(srv)
	rp, _ := names.ParseRepoPath(j.Repo)
	snap, ok := w.localSnapshot(ctx, rp, snaps)
	if !ok {
		return ctx.Err() == nil
	}
	tally.checked++
	got, err := transfer.RemoteFingerprint(ctx, w.Syncer.Remote, t, rp)
	if ctx.Err() != nil {
		return false
	}
	if err != nil && w.checkAndRepair(ctx, srv, j, rp, false) {
		// git there could not read the refs because object files
		// they need were gone: sent again, so they read now.
		tally.repaired++
		return true
	}
	if err != nil || got != snap.Only(t.Refs).Fingerprint {
		w.markStale(ctx, srv, j, tally)
		return true
	}
	// The refs match; the object files they need may still be gone.
	if w.checkAndRepair(ctx, srv, j, rp, false) {
		tally.repaired++
	}
	return true
}

// markStale queues a replica whose refs differ from its source's.
func (w *Workers) markStale(ctx context.Context, srv store.Server, j store.Job, tally *reconcileTally) {
	tally.stale++
	if err := w.Store.MarkStale(ctx, j.RepoID, srv.ID); err != nil {
		w.Log.Error().Err(err).Str("repo", j.Repo).Str("target", srv.Name).Msg("queue stale replica")
	}
}

// localSnapshot is this node's refs of rp, read once per pass.
func (w *Workers) localSnapshot(ctx context.Context, rp names.RepoPath, snaps map[string]transfer.Snapshot) (transfer.Snapshot, bool) {
	if snap, ok := snaps[rp.String()]; ok {
		return snap, true
	}
	snap, err := w.snapshot(ctx, rp)
	if err != nil {
		return transfer.Snapshot{}, false
	}
	snaps[rp.String()] = snap
	return snap, true
}

// snapshot reads the refs of this node's copy of rp.
func (w *Workers) snapshot(ctx context.Context, rp names.RepoPath) (transfer.Snapshot, error) {
	dir, err := w.Syncer.Root.Open(rp.Org, rp.Repo)
	if err != nil {
		return transfer.Snapshot{}, err
	}
	return transfer.TakeSnapshot(ctx, dir)
}

// deepChecks compares by content every replica whose deep check is due
// (VerifyEvery, spread over the interval) and repairs what it finds.
func (w *Workers) deepChecks(ctx context.Context) {
	// The pass reads the whole queue: not at every 2 s tick, but often
	// enough that no replica waits much past its due time.
	pass := min(time.Minute, w.VerifyEvery/10)
	if w.VerifyEvery <= 0 || time.Since(w.deepPassAt) < pass {
		return
	}
	w.deepPassAt = time.Now()
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return
	}
	var jobs []store.Job
	now := time.Now()
	for _, srv := range servers {
		if !w.eligible(srv) {
			continue
		}
		if jobs == nil {
			if jobs, err = w.Store.Jobs(ctx); err != nil {
				return
			}
		}
		var due []store.Job
		for _, j := range jobs {
			if j.ServerID != srv.ID || !j.Done() || !w.mine(j.PrimaryID) || transfer.CheckScope(srv, j.Repo) != nil ||
				!DeepDue(j.Repo, srv.Name, j.DeepCheckedAt, srv.CreatedAt, now, w.VerifyEvery) {
				continue
			}
			if _, err := names.ParseRepoPath(j.Repo); err == nil {
				due = append(due, j)
			}
		}
		if srv.Role == store.Backup {
			due = w.deepBatches(ctx, srv, due)
		}
		for _, j := range due {
			rp, _ := names.ParseRepoPath(j.Repo)
			w.checkAndRepair(ctx, srv, j, rp, true)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// checkAndRepair checks the object files of j's replica on srv (by
// content when deep), repairs what is missing or damaged, and reports
// whether it repaired anything. A deep check is recorded for sync status.
func (w *Workers) checkAndRepair(ctx context.Context, srv store.Server, j store.Job, rp names.RepoPath, deep bool) bool {
	t := transfer.TargetOf(srv)
	log := w.Log.With().Str("repo", j.Repo).Str("target", srv.Name).Bool("deep", deep).Logger()
	record := func(result string) {
		if deep {
			if err := w.Store.SetDeepCheck(ctx, j.RepoID, srv.ID, time.Now(), result); err != nil {
				log.Error().Err(err).Msg("record deep check")
			}
		}
	}
	// A push since the job was done brings files the replica is still to
	// get: that is the next sync's work, not damage.
	stillDone := func() bool {
		cur, err := w.Store.JobFor(ctx, j.RepoID, srv.ID)
		return err == nil && cur.Done()
	}
	start := time.Now()
	h, err := w.Syncer.CheckAndRepair(ctx, rp, t, deep, stillDone)
	found, after, res := h.Found, h.After, h.Sent
	switch {
	case err != nil && !h.Repaired:
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("check replica")
		}
		return false
	case found.OK():
		log.Debug().Int64("bytes", found.Examined).Int64("duration_ms", found.Duration.Milliseconds()).Msg("check replica")
		record("")
		return false
	case !h.Repaired:
		return false // a push came in between: the next sync brings the rest
	}
	ev := log.Info()
	switch {
	case err != nil:
		ev = log.Warn().Err(err)
		record("repair failed: " + found.String())
	case !after.OK():
		ev = log.Warn().Str("after", after.String())
		record("not repaired: " + after.String())
	default:
		record("repaired: " + found.String())
	}
	ev.Str("cause", found.Cause()).Str("found", found.String()).Int64("bytes", res.Bytes).Int64("files", res.Files).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("repair replica")
	if w.Repaired != nil && err == nil {
		w.Repaired(srv.Name, found.Cause())
	}
	return err == nil && after.OK()
}
