package replicate

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/wake"
)

// Workers drain the replication queue.
type Workers struct {
	Store     *store.Store
	Syncer    *Syncer
	Log       zerolog.Logger
	Global    int           // syncs at once (default 4)
	PerTarget int           // syncs at once per target (default 2)
	Lease     time.Duration // how long a claimed job is ours (default 10m)
	// BackoffMin and BackoffMax bound the retry delay (default 2s, 5m).
	BackoffMin, BackoffMax time.Duration
	Owner                  string      // lease owner, for the record
	DirtyDir               string      // markers left by post-receive when the database was unavailable
	Observe                func(Event) // metrics, may be nil
	// Publisher, when set, delivers metadata after every change:
	// database snapshots to backups, authorization metadata to
	// neighbours (before any replica, so that it is never served
	// without its permissions).
	Publisher *Publisher

	// Rotate, when set, continues a key rotation under way (servers that
	// were down switch to the new key once they are reached).
	Rotate func(ctx context.Context)

	// StaleAge is how old a push's quarantine or a lock file must be
	// before maintenance removes it: far above the longest session
	// (default 24h).
	StaleAge time.Duration
	// VerifyEvery is how often each replica gets a deep check (0: never).
	VerifyEvery time.Duration
	// Repaired, when set, counts a repair of a replica (metrics).
	Repaired func(target, cause string)

	publishing, reconciling atomic.Bool
	// deepPassAt is when deepChecks last looked at the queue; only the
	// one reconciling goroutine touches it.
	deepPassAt time.Time

	mu      sync.Mutex
	running map[int64]int
	// down holds targets that failed to connect: while open, their jobs
	// wait, so a server that is down for a day gets one probe per backoff
	// period instead of one attempt per queued repository.
	down map[int64]breaker
	// metaDown holds targets whose last metadata delivery failed: the next
	// one waits out a backoff, as a repository's sync does.
	metaDown map[int64]breaker
}

type breaker struct {
	failures int
	until    time.Time
}

// Event is one finished attempt, for metrics.
type Event struct {
	Repo, Target string
	OK, Blocked  bool
	Cause        string
	Lag          time.Duration // from the oldest unsynced push to verified
	Duration     time.Duration
	Bytes        int64
}

// Backoff is the delay before attempt n+1 with the default range: about
// 2s doubling to 5 min.
func Backoff(attempts int) time.Duration { return BackoffRange(attempts, 2*time.Second, 5*time.Minute) }

// BackoffRange is the delay before attempt n+1: lo doubling up to hi,
// with ±20% jitter so that many jobs do not retry in step.
func BackoffRange(attempts int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (w *Workers) backoff(attempts int) time.Duration {
	lo, hi := w.BackoffMin, w.BackoffMax
	if lo <= 0 {
		lo = 2 * time.Second
	}
	if hi < lo {
		hi = max(lo, 5*time.Minute)
	}
	return BackoffRange(attempts, lo, hi)
}

// Run works until ctx ends. wake nudges it when post-receive queued work.
func (w *Workers) Run(ctx context.Context, wake <-chan struct{}) {
	if w.Global <= 0 {
		w.Global = 4
	}
	if w.PerTarget <= 0 {
		w.PerTarget = 2
	}
	if w.Lease <= 0 {
		w.Lease = 10 * time.Minute
	}
	w.mu.Lock()
	w.running = map[int64]int{}
	w.down = map[int64]breaker{}
	w.metaDown = map[int64]breaker{}
	w.mu.Unlock()
	if err := w.Store.ReleaseLeases(ctx, w.Owner); err != nil {
		w.Log.Error().Err(err).Msg("release leases")
	}
	slots := make(chan struct{}, w.Global)
	// A finished job may have been pushed to while it ran (it is pending
	// again), and it frees a slot: either way, look at the queue at once.
	finished := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	// Why the loop woke: a finished job only frees a slot, so the
	// metadata and reconciliation checks wait for a wake-up or the tick.
	woke := "start"
	for {
		w.queueMarkers(ctx)
		if woke != "finished" && w.Publisher != nil && w.publishing.CompareAndSwap(false, true) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer w.publishing.Store(false)
				if w.Rotate != nil {
					w.Rotate(ctx)
				}
				w.publish(ctx)
			}()
		}
		if (woke == "start" || woke == "tick") && w.reconciling.CompareAndSwap(false, true) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer w.reconciling.Store(false)
				w.reconcile(ctx)
				w.deepChecks(ctx)
			}()
		}
		for {
			select {
			case slots <- struct{}{}:
			default:
				goto wait
			}
			job, srv, ok, err := w.claim(ctx)
			if err != nil || !ok {
				<-slots
				if err != nil && ctx.Err() == nil {
					w.Log.Error().Err(err).Msg("claim replication job")
				}
				goto wait
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(ctx, job, srv)
				w.release(job.ServerID)
				<-slots
				// Only now, with the slot free, tell the loop to look again.
				select {
				case finished <- struct{}{}:
				default:
				}
			}()
		}
	wait:
		select {
		case <-ctx.Done():
			return
		case <-wake:
			woke = "wake"
		case <-finished:
			woke = "finished"
		case <-tick.C:
			woke = "tick"
		}
	}
}

// claim takes a job for a target that has a free slot, and returns it
// with that target.
func (w *Workers) claim(ctx context.Context) (store.Job, store.Server, bool, error) {
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return store.Job{}, store.Server{}, false, err
	}
	w.mu.Lock()
	var free []int64
	now := time.Now()
	for _, s := range servers {
		b := w.down[s.ID]
		switch {
		case b.until.After(now):
			// Open: wait for the probe time.
		case b.failures > 0:
			// Half open: one probe at a time.
			if w.running[s.ID] == 0 {
				free = append(free, s.ID)
			}
		case w.running[s.ID] < w.PerTarget:
			free = append(free, s.ID)
		}
	}
	w.mu.Unlock()
	if free == nil {
		free = []int64{}
	}
	j, ok, err := w.Store.Claim(ctx, w.Owner, w.Lease, free)
	if !ok || err != nil {
		return j, store.Server{}, ok, err
	}
	w.mu.Lock()
	w.running[j.ServerID]++
	w.mu.Unlock()
	var srv store.Server
	for _, s := range servers {
		if s.ID == j.ServerID {
			srv = s
		}
	}
	return j, srv, true, nil
}

func (w *Workers) release(server int64) {
	w.mu.Lock()
	w.running[server]--
	w.mu.Unlock()
}

// run syncs one job and records the outcome.
func (w *Workers) run(ctx context.Context, j store.Job, srv store.Server) {
	start := time.Now()
	// Keep the lease while the sync runs, however long it takes.
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go func() {
		t := time.NewTicker(w.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				w.Store.Renew(renewCtx, j, w.Owner, w.Lease)
			}
		}
	}()
	var res Result
	if !InScope(srv.RepoPatterns, j.Repo) {
		// Outside the server's scope: nothing is sent, and nothing it
		// holds is deleted.
		if err := w.Store.Done(ctx, j, j.Generation, "", 0); err != nil {
			w.Log.Error().Err(err).Str("repo", j.Repo).Str("target", j.Server).Msg("record out-of-scope job")
		}
		return
	}
	rp, err := names.ParseRepoPath(j.Repo)
	if err == nil {
		// After a failure, or before the first success, lay the replica's
		// foundations again.
		fresh := j.LastSuccessAt.IsZero() || j.Attempts > 0
		if w.Publisher != nil && srv.Role == "neighbor" {
			_, err = w.Publisher.Ensure(ctx, srv)
		}
		if err == nil {
			res, err = w.Syncer.Sync(ctx, rp, TargetOf(srv), fresh)
		}
	}
	ev := Event{Repo: j.Repo, Target: j.Server, Duration: time.Since(start), Bytes: res.Bytes}
	log := w.Log.With().Str("repo", j.Repo).Str("target", j.Server).Int64("duration_ms", ev.Duration.Milliseconds()).Logger()
	w.trip(j.ServerID, err)
	if err == nil {
		ev.OK = true
		if !j.DirtySince.IsZero() {
			ev.Lag = time.Since(j.DirtySince)
		}
		if derr := w.Store.Done(ctx, j, j.Generation, res.Fingerprint, res.Bytes); derr != nil {
			log.Error().Err(derr).Msg("record sync")
		}
		log.Info().Int64("bytes", res.Bytes).Int64("files", res.Files).Float64("speed_kib_s", res.SpeedKiB()).
			Int64("lag_ms", ev.Lag.Milliseconds()).Str("fingerprint", res.Fingerprint[:12]).Msg("sync")
	} else if ctx.Err() != nil {
		// Shutting down: leave the lease to run out; the job runs again.
		return
	} else {
		ev.Blocked = w.blockIfNeeded(ctx, srv, err)
		ev.Cause = cause(err)
		retry := time.Now().Add(w.backoff(j.Attempts))
		if ev.Cause == "partial" {
			// rsync 23/24: files changed or vanished under it (a push or a
			// repack): try again soon, not after a long backoff.
			retry = time.Now().Add(w.backoff(0))
		}
		if ferr := w.Store.Failed(ctx, j, oneLine(err.Error()), retry, ev.Blocked); ferr != nil {
			log.Error().Err(ferr).Msg("record failed sync")
		}
		log.Warn().Err(err).Str("cause", ev.Cause).Bool("blocked", ev.Blocked).Int("attempts", j.Attempts+1).
			Time("retry_at", retry).Msg("sync failed")
	}
	if w.Observe != nil {
		w.Observe(ev)
	}
}

// publish delivers the current metadata to every server that lacks it
// and is reachable as far as the circuit breaker knows.
func (w *Workers) publish(ctx context.Context) {
	gen, err := w.Store.MetaGeneration(ctx)
	if err != nil {
		return
	}
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return
	}
	for _, srv := range servers {
		if srv.MetaGeneration >= gen || !w.eligible(srv) || w.metaWaits(srv.ID) {
			continue
		}
		d, err := w.Publisher.Ensure(ctx, srv)
		if ctx.Err() != nil {
			return
		}
		w.trip(srv.ID, err)
		retry := w.metaTrip(srv.ID, err)
		log := w.Log.With().Str("target", srv.Name).Str("kind", d.Kind).Int64("generation", d.Generation).Logger()
		if err != nil {
			blocked := w.blockIfNeeded(ctx, srv, err)
			log.Warn().Err(err).Str("cause", cause(err)).Bool("blocked", blocked).Time("retry_at", retry).Msg("deliver metadata")
			continue
		}
		if d.Kind != "" {
			log.Info().Int64("bytes", d.Bytes).Int64("duration_ms", d.Duration.Milliseconds()).Msg("deliver metadata")
		}
	}
}

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
	snaps := map[string]Snapshot{}
	for _, srv := range servers {
		every := time.Duration(srv.EverySeconds) * time.Second
		last := srv.ReconciledAt
		if last.IsZero() {
			last = srv.CreatedAt // a new server was just copied in full
		}
		if time.Since(last) < every || !w.eligible(srv) {
			continue
		}
		if jobs == nil {
			if jobs, err = w.Store.Jobs(ctx); err != nil {
				return
			}
		}
		start := time.Now()
		t := TargetOf(srv)
		checked, stale, repaired := 0, 0, 0
		for _, j := range jobs {
			if j.ServerID != srv.ID || j.State != "done" || !InScope(srv.RepoPatterns, j.Repo) {
				continue
			}
			rp, err := names.ParseRepoPath(j.Repo)
			if err != nil {
				continue
			}
			snap, ok := snaps[j.Repo]
			if !ok {
				dir, err := w.Syncer.Root.Open(rp.Org, rp.Repo)
				if err != nil {
					continue
				}
				if snap, err = TakeSnapshot(ctx, dir); err != nil {
					continue
				}
				snaps[j.Repo] = snap
			}
			checked++
			got, err := RemoteFingerprint(ctx, w.Syncer.Remote, t, rp)
			if ctx.Err() != nil {
				return
			}
			if err != nil && w.checkAndRepair(ctx, srv, j, rp, false) {
				// git there could not read the refs because object files
				// they need were gone: sent again, so they read now.
				repaired++
				continue
			}
			if err != nil || got != snap.Only(t.Refs).Fingerprint {
				stale++
				if err := w.Store.MarkStale(ctx, j.RepoID, srv.ID); err != nil {
					w.Log.Error().Err(err).Str("repo", j.Repo).Str("target", srv.Name).Msg("queue stale replica")
				}
				continue
			}
			// The refs match; the object files they need may still be gone.
			if w.checkAndRepair(ctx, srv, j, rp, false) {
				repaired++
			}
		}
		if err := w.Store.SetReconciled(ctx, srv.ID, start); err != nil {
			w.Log.Error().Err(err).Str("target", srv.Name).Msg("record reconciliation")
		}
		w.Log.Info().Str("target", srv.Name).Int("checked", checked).Int("stale", stale).Int("repaired", repaired).
			Int64("duration_ms", time.Since(start).Milliseconds()).Msg("reconcile")
	}
}

func (w *Workers) isDown(server int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down[server].until.After(time.Now())
}

// trip updates the target's circuit breaker after an attempt: connection
// failures open it for a growing while; anything else (a sync that ran)
// closes it.
func (w *Workers) trip(server int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil || (cause(err) != "connect" && cause(err) != "timeout") {
		delete(w.down, server)
		return
	}
	b := w.down[server]
	b.failures++
	b.until = time.Now().Add(w.backoff(b.failures - 1))
	w.down[server] = b
}

// blockIfNeeded blocks srv when err is one that retrying cannot mend (a
// host key mismatch, a refused key, a promoted backup) and closes its
// connections; it reports whether it did. A neighbour refuses this node's
// key until its operator approves this node: that is waited for, with
// backoff, not blocked.
func (w *Workers) blockIfNeeded(ctx context.Context, srv store.Server, err error) bool {
	var re *remote.Error
	if !errors.As(err, &re) || !re.Blocking() || (srv.Role == "neighbor" && re.KeyRefused()) {
		return false
	}
	if berr := w.Store.BlockServer(ctx, srv.ID, oneLine(err.Error())); berr != nil {
		w.Log.Error().Err(berr).Str("target", srv.Name).Msg("block server")
	}
	w.Syncer.Remote.CloseMasters(srv.Name)
	return true
}

// eligible reports whether syncs and checks go to srv now.
func (w *Workers) eligible(srv store.Server) bool {
	return (srv.Role == "backup" || srv.Approved) && srv.Enabled && srv.BlockedReason == "" && !w.isDown(srv.ID)
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
		for _, j := range jobs {
			if j.ServerID != srv.ID || j.State != "done" || !InScope(srv.RepoPatterns, j.Repo) ||
				!DeepDue(j.Repo, srv.Name, j.DeepCheckedAt, srv.CreatedAt, now, w.VerifyEvery) {
				continue
			}
			rp, err := names.ParseRepoPath(j.Repo)
			if err != nil {
				continue
			}
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
	t := TargetOf(srv)
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
		return err == nil && cur.State == "done"
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

// metaWaits reports whether the target's metadata delivery is backing off.
func (w *Workers) metaWaits(server int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.metaDown[server].until.After(time.Now())
}

// metaTrip records a metadata delivery: a failure makes the next one wait
// longer each time (the sync backoff), a success clears that. It returns
// when the next attempt may run.
func (w *Workers) metaTrip(server int64, err error) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.metaDown, server)
		return time.Now()
	}
	if w.metaDown == nil {
		w.metaDown = map[int64]breaker{}
	}
	b := w.metaDown[server]
	b.failures++
	b.until = time.Now().Add(w.backoff(b.failures - 1))
	w.metaDown[server] = b
	return b.until
}

// cause names a failure for metrics, following rsync's exit codes.
func cause(err error) string {
	var re *remote.Error
	switch {
	case errors.Is(err, ErrMismatch):
		return "verify"
	case !errors.As(err, &re):
		return "local"
	case re.Blocking():
		return "blocked"
	case re.Code == 23 || re.Code == 24:
		return "partial"
	case re.Code == 30 || re.Code == 35:
		return "timeout"
	case re.Code == 255:
		return "connect"
	}
	return "rsync"
}

// TargetOf turns a stored server into an rsync target.
func TargetOf(s store.Server) remote.Target {
	return remote.Target{Name: s.Name, Host: s.Host, Port: s.Port, User: s.User, Path: s.Path, HostKey: s.HostKey, Peer: s.Role == "neighbor",
		Refs: SplitPatterns(s.RefPatterns), BWLimit: s.BWLimitKBps, Compress: s.Compress, UseNext: s.KeyState != ""}
}

// queueMarkers queues pushes that post-receive could only note on disk.
func (w *Workers) queueMarkers(ctx context.Context) {
	if w.DirtyDir == "" {
		return
	}
	entries, err := os.ReadDir(w.DirtyDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rp, err := wake.MarkerRepo(e.Name())
		if err != nil {
			os.Remove(filepath.Join(w.DirtyDir, e.Name()))
			continue
		}
		if err := w.Store.MarkDirty(ctx, rp.Org, rp.Repo); err != nil && !errors.Is(err, store.ErrNotFound) {
			continue // the database is still unavailable; keep the marker
		}
		os.Remove(filepath.Join(w.DirtyDir, e.Name()))
	}
}

// ResetBreakers closes every target's circuit breaker.
func (w *Workers) ResetBreakers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = map[int64]breaker{}
	w.metaDown = map[int64]breaker{}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
