// Package lease keeps a cluster node's lease: it renews the node's row
// in the shared database every fifth of the `lease` setting and knows,
// by this machine's monotonic clock alone, until when the lease surely
// holds. The gateway asks it before every user session (fencing): a
// node that cannot prove its lease takes no write and serves no read.
package lease

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Renewer extends a node's lease by the database's clock
// (store.Store.RenewLease).
type Renewer interface {
	RenewLease(ctx context.Context, nodeID int64, lease time.Duration) error
}

// Keeper renews one node's lease and says whether it holds.
type Keeper struct {
	Store Renewer
	Node  int64
	// Lease is how long one renewal holds (the `lease` setting).
	Lease time.Duration
	Log   zerolog.Logger
	// Renewed, when set, observes the latency of every successful
	// renewal (metrics).
	Renewed func(time.Duration)

	mu        sync.Mutex
	heldUntil time.Time // monotonic; zero: never renewed
	said      string    // the state last logged: "", "held" or "lost"
	lastErr   error     // the last failed renewal's
}

// Every is how often Run renews: a fifth of the lease, so that four
// renewals in a row may fail before the lease runs out.
func (k *Keeper) Every() time.Duration { return k.Lease / 5 }

// margin is how much sooner than the database the keeper gives the lease
// up: the database counts the lease from when it ran the renewal, which
// is after the renewal started here, and the margin also absorbs the two
// clocks' drift over one lease.
func (k *Keeper) margin() time.Duration { return min(time.Second, k.Lease/4) }

// Held reports whether the lease surely holds now: the last successful
// renewal started less than the lease minus the margin ago. The first
// call that finds the lease run out logs it (the gateway and the election
// loop ask every second at least, so the log says when it lapsed even
// while a renewal hangs).
func (k *Keeper) Held() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	held := !k.heldUntil.IsZero() && time.Now().Before(k.heldUntil)
	k.note(held)
	return held
}

// note logs a change of the lease's state since the last one logged;
// k.mu is held.
func (k *Keeper) note(held bool) {
	now := "lost"
	if held {
		now = "held"
	}
	if now == k.said || (!held && k.heldUntil.IsZero() && k.lastErr == nil) { // or not renewed yet
		return
	}
	k.said = now
	if held {
		k.Log.Info().Int64("lease_ms", k.Lease.Milliseconds()).Msg("lease held")
		return
	}
	k.Log.Warn().Err(k.lastErr).Int64("lease_ms", k.Lease.Milliseconds()).Msg("lease lost: this node takes no session until it renews it")
}

// Renew renews the lease once, within half the lease (a renewal slower
// than that is no use), and on success moves "held until" to when the
// renewal started plus the lease minus the margin.
func (k *Keeper) Renew(ctx context.Context) error {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, k.Lease/2)
	defer cancel()
	if err := k.Store.RenewLease(rctx, k.Node, k.Lease); err != nil {
		k.mu.Lock()
		k.lastErr = err
		k.mu.Unlock()
		return err
	}
	if k.Renewed != nil {
		k.Renewed(time.Since(start))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if until := start.Add(k.Lease - k.margin()); until.After(k.heldUntil) {
		k.heldUntil = until
	}
	return nil
}

// Run renews the lease every Every until ctx ends, logging only the
// changes (Held): the lease lost, with the last error, and held again.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.Every())
	defer t.Stop()
	for {
		k.Renew(ctx)
		if ctx.Err() != nil {
			return
		}
		k.Held()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
