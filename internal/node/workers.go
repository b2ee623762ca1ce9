package node

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"cpm/internal/metrics"
	"cpm/internal/pins"
	"cpm/internal/replicate"
	"cpm/internal/replkey"
	"cpm/internal/store"
	"cpm/internal/transfer"
	"cpm/internal/wake"
)

// StartWorkers runs the replication workers and the scheduled maintenance
// until ctx ends; the channel is closed when they have stopped. m may be
// nil (no metrics).
func (n *Node) StartWorkers(ctx context.Context, m *metrics.Replication) (<-chan struct{}, error) {
	w := n.workers(m)
	if err := pins.Write(ctx, n.Store, n.Dir); err != nil {
		return nil, fmt.Errorf("pin host keys: %w", err)
	}
	w.Rotate = n.continueRotation(replkey.Rotator{Store: n.Store, Actor: store.Actor{Name: "cpm-shell"}})
	woke := make(chan struct{}, 1)
	if err := wake.Listen(ctx, n.Dir.WakeSocket(), woke, w.ResetBreakers); err != nil {
		return nil, err
	}
	if err := n.listenSync(ctx, w.Syncer); err != nil {
		return nil, err
	}
	// cpm-shell replicate keeps the node's lease and elects too (under
	// serve they run already); both perform the node's handovers here.
	leasesDone := n.startLeases(ctx, nil)
	handoversDone := n.startHandovers(ctx, w.Syncer)
	done := make(chan struct{})
	go func() {
		defer func() { <-handoversDone; <-leasesDone; close(done) }()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.Maintain(ctx, n.Conf.Repack) }()
		w.Run(ctx, woke)
		wg.Wait()
	}()
	return done, nil
}

func (n *Node) workers(m *metrics.Replication) *replicate.Workers {
	c := n.Conf
	host, _ := os.Hostname()
	syncer := transfer.NewSyncer(n.Dir, n.Disk)
	syncer.FreeMargin = c.FreeSpaceMargin
	w := &replicate.Workers{
		Store:      n.Store,
		Syncer:     syncer,
		Publisher:  &transfer.Publisher{Store: n.Store, Syncer: syncer},
		Log:        n.Log.With().Str("component", "replicate").Logger(),
		Global:     c.Workers,
		PerTarget:  c.PerTarget,
		Lease:      c.Lease,
		BackoffMin: c.BackoffMin,
		BackoffMax: c.BackoffMax,
		// Stable across restarts, so a restarted node takes back at once
		// the jobs it held when it stopped or crashed.
		Owner:       host + ":" + n.Dir.String(),
		DirtyDir:    n.Dir.Dirty(),
		VerifyEvery: c.VerifyEvery,
		// No push lives longer than a session; twice that is safely dead.
		StaleAge: 2 * c.MaxSessionTime,
		Self:     n.Self.ID,
	}
	if n.Self.ID != 0 {
		pins, revocations := n.pinsWhenChanged(), n.refreshRevocations
		w.Beat = func(ctx context.Context) { pins(ctx); revocations(ctx) }
	}
	if m != nil {
		w.Observe = m.Observe
		w.Repaired = m.Repaired
	}
	return w
}

// continueRotation returns the workers' hook that carries a key rotation
// under way further, every 10 s at most, so that a server that was down
// switches keys once it is back.
func (n *Node) continueRotation(rot replkey.Rotator) func(context.Context) {
	var last time.Time
	return func(ctx context.Context) {
		if _, err := os.Stat(n.Dir.NextReplicationKey()); err != nil || time.Since(last) < 10*time.Second {
			return
		}
		last = time.Now()
		r, err := rot.Rotate(ctx, n.Dir, false)
		if err != nil {
			n.Log.Warn().Err(err).Msg("key rotation")
		} else if r.Finished {
			n.Log.Info().Str("key", r.NewFP).Msg("key rotation finished")
		}
	}
}
