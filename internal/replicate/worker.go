// Package replicate is the scheduler of replication: the workers that
// claim queued jobs with a lease and run them through the copy engine
// (internal/transfer), at most so many at once and per server, with a
// circuit breaker per server and backoff; and in the background the
// metadata publisher, the reconciliation of replicas with their sources,
// the deep checks and the scheduled repacks. What one copy does is
// transfer's business; when and whether it happens is this package's.
package replicate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/names"
	"cpm/internal/queue"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Workers drain the replication queue.
type Workers struct {
	Store     *store.Store
	Syncer    *transfer.Syncer
	Log       zerolog.Logger
	Global    int // syncs at once (default 4)
	PerTarget int // syncs at once per target (default 2)
	// Batch is the most jobs for one backup that one batched transfer
	// takes (default DefaultBatch; 1: every job alone).
	Batch int
	Lease time.Duration // how long a claimed job is ours without renewal (default 10s; renewed every third of it)
	// BackoffMin and BackoffMax bound the retry delay (default 2s, 5m).
	BackoffMin, BackoffMax time.Duration
	Owner                  string // lease owner, for the record; each claim adds a token of its own
	// Self is this node's server id in a cluster (0 outside one): it
	// claims, reconciles and repacks only the repositories it is primary
	// of (and those without a primary); the lease keeper heartbeats.
	Self int64
	// Beat, when set, runs every BeatEvery (the node rewrites its
	// pins when the cluster's nodes changed, and its revocation list when
	// the database's differs).
	Beat      func(ctx context.Context)
	BeatEvery time.Duration // default HeartbeatEvery
	DirtyDir  string        // markers left by post-receive when the database was unavailable
	Observe   func(Event)   // metrics, may be nil
	// Publisher, when set, delivers metadata after every change:
	// database snapshots to backups, authorization metadata to
	// neighbours (before any replica, so that it is never served
	// without its permissions).
	Publisher *transfer.Publisher

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

	publishing, reconciling, maintaining atomic.Bool
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
	// beats holds each cluster node's heartbeat as last seen (comeBack).
	beats map[int64]time.Time
}

// Event is one finished attempt, for metrics.
type Event struct {
	Repo, Target string
	OK, Blocked  bool
	// Metadata marks a metadata delivery (no Repo), not a sync.
	Metadata bool
	Cause    string
	Lag      time.Duration // from the oldest unsynced push to verified
	Duration time.Duration
	Bytes    int64
}

// wakeReason is why the work loop looks at the queue again.
type wakeReason int

const (
	wokeStart    wakeReason = iota
	wokeTick                // the periodic timer
	wokeNudge               // post-receive or a command queued work
	wokeFinished            // a job finished, freeing a slot
)

// Run works until ctx ends. wake nudges it when post-receive queued work.
func (w *Workers) Run(ctx context.Context, wake <-chan struct{}) {
	w.setDefaults()
	if err := w.Store.ReleaseLeases(ctx, w.Owner); err != nil {
		w.Log.Error().Err(err).Msg("release leases")
	}
	slots := make(chan struct{}, w.Global)
	// A finished job may have been pushed to while it ran (it is pending
	// again), and it frees a slot: either way, look at the queue at once.
	finished := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	if w.Self != 0 {
		wg.Add(1)
		go func() { defer wg.Done(); w.heartbeat(ctx) }()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	why := wokeStart
	for {
		queue.Drain(ctx, w.Store, w.DirtyDir)
		// A finished job only frees a slot: metadata and reconciliation
		// wait for a nudge or the timer.
		if why != wokeFinished && w.Publisher != nil {
			w.background(&wg, &w.publishing, func() {
				if w.Rotate != nil {
					w.Rotate(ctx)
				}
				w.publish(ctx)
			})
		}
		if why == wokeStart || why == wokeTick {
			w.background(&wg, &w.reconciling, func() {
				w.reconcile(ctx)
				w.deepChecks(ctx)
			})
		}
		w.fill(ctx, &wg, slots, finished)
		select {
		case <-ctx.Done():
			return
		case <-wake:
			why = wokeNudge
		case <-finished:
			why = wokeFinished
		case <-tick.C:
			why = wokeTick
		}
	}
}

func (w *Workers) setDefaults() {
	if w.Global <= 0 {
		w.Global = 4
	}
	if w.PerTarget <= 0 {
		w.PerTarget = 2
	}
	if w.Lease <= 0 {
		w.Lease = 10 * time.Second
	}
	if w.Batch <= 0 {
		w.Batch = DefaultBatch
	}
	w.mu.Lock()
	w.running = map[int64]int{}
	w.down = map[int64]breaker{}
	w.metaDown = map[int64]breaker{}
	w.beats = map[int64]time.Time{}
	w.mu.Unlock()
}

// background runs f in its own goroutine unless the previous run
// (flagged by busy) is still going.
func (w *Workers) background(wg *sync.WaitGroup, busy *atomic.Bool, f func()) {
	if !busy.CompareAndSwap(false, true) {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer busy.Store(false)
		f()
	}()
}

// fill claims jobs and runs each in its own goroutine while there are
// free slots and claimable jobs; a job that ends frees its slot and then
// signals finished.
func (w *Workers) fill(ctx context.Context, wg *sync.WaitGroup, slots chan struct{}, finished chan<- struct{}) {
	for {
		select {
		case slots <- struct{}{}:
		default:
			return
		}
		job, srv, ok, err := w.claim(ctx)
		if err != nil || !ok {
			<-slots
			if err != nil && ctx.Err() == nil {
				w.Log.Error().Err(err).Msg("claim replication job")
			}
			return
		}
		// The batch is claimed here, before the next slot claims: the
		// due jobs of a backup go to one batch, not to racing ones.
		jobs := w.claimBatch(ctx, job, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if len(jobs) > 1 {
				w.runBatch(ctx, jobs, srv)
			} else {
				w.run(ctx, job, srv)
			}
			w.release(job.ServerID)
			<-slots
			// Only now, with the slot free, tell the loop to look again.
			select {
			case finished <- struct{}{}:
			default:
			}
		}()
	}
}

// claim takes a job for a target that has a free slot, and returns it
// with that target.
func (w *Workers) claim(ctx context.Context) (store.Job, store.Server, bool, error) {
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return store.Job{}, store.Server{}, false, err
	}
	w.comeBack(ctx, servers)
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
	j, ok, err := w.Store.Claim(ctx, w.Owner, w.Self, w.Lease, free)
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

// comeBack lets a node that is back after being down be tried at once:
// its breaker closes and its failed jobs are due now, so a restarted
// node is synced within seconds, not after a backoff that grew to
// backoff_max while it was away (whatever its syncs failed with then:
// a refused connection, or a fenced node that could not check a key).
func (w *Workers) comeBack(ctx context.Context, servers []store.Server) {
	for _, s := range servers {
		if s.Role != store.Node {
			continue
		}
		w.mu.Lock()
		if w.beats == nil {
			w.beats = map[int64]time.Time{}
		}
		back := cameBack(w.beats[s.ID], s.HeartbeatAt, w.Lease)
		w.beats[s.ID] = s.HeartbeatAt
		if back {
			delete(w.down, s.ID)
		}
		w.mu.Unlock()
		if !back {
			continue
		}
		w.Log.Info().Str("target", s.Name).Msg("node is back; its syncs are due now")
		if err := w.Store.RetryServer(ctx, s.ID); err != nil {
			w.Log.Error().Err(err).Str("target", s.Name).Msg("clear the backoff of a node that is back")
		}
	}
}

func (w *Workers) release(server int64) {
	w.mu.Lock()
	w.running[server]--
	w.mu.Unlock()
}

// run syncs one job and records the outcome.
func (w *Workers) run(ctx context.Context, j store.Job, srv store.Server) {
	start := time.Now()
	defer w.keepLease(ctx, j)()
	var res transfer.Result
	if transfer.CheckScope(srv, j.Repo) != nil {
		// Outside the server's scope: nothing is sent, and nothing it
		// holds is deleted.
		if err := w.Store.Done(ctx, j, j.Generation, 0, "", 0); err != nil {
			w.Log.Error().Err(err).Str("repo", j.Repo).Str("target", j.Server).Msg("record out-of-scope job")
		}
		return
	}
	// Read before the ref snapshot: the target then holds at least this
	// generation, never less than Done records.
	repoGen, err := w.Store.RepoGeneration(ctx, j.RepoID)
	var rp names.RepoPath
	if err == nil {
		rp, err = names.ParseRepoPath(j.Repo)
	}
	if err == nil {
		// After a failure, or before the first success, lay the replica's
		// foundations again.
		fresh := j.LastSuccessAt.IsZero() || j.Attempts > 0
		w.Log.Info().Str("repo", j.Repo).Str("target", j.Server).Bool("fresh", fresh).Int("attempts", j.Attempts).Msg("sync started")
		if w.Publisher != nil && srv.Role == store.Neighbor {
			_, err = w.Publisher.Ensure(ctx, srv)
		}
		if err == nil {
			err = w.keepDiverged(ctx, j, srv, rp)
		}
		if err == nil {
			res, err = w.Syncer.Sync(ctx, rp, transfer.TargetOf(srv), fresh)
		}
	}
	w.finish(ctx, j, srv, start, repoGen, res, err, 0)
}

// keepLease renews j's lease while its sync runs, however long that
// takes; the returned func stops it.
func (w *Workers) keepLease(ctx context.Context, j store.Job) (stop func()) {
	return w.renewing(ctx, func(ctx context.Context) bool {
		if err := w.Store.Renew(ctx, j, w.Owner, w.Lease); errors.Is(err, store.ErrLeaseLost) {
			// Stalled past the lease: another worker runs the job
			// now, and only its outcome is recorded.
			w.Log.Warn().Str("repo", j.Repo).Str("target", j.Server).Msg("lease lost")
			return false
		}
		return true
	})
}

// renewing calls renew every third of the lease until the returned func
// is called or renew returns false (the lease is gone).
func (w *Workers) renewing(ctx context.Context, renew func(context.Context) bool) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(w.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !renew(ctx) {
					return
				}
			}
		}
	}()
	return stop
}
