package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Planned handovers (repo move, node drain) are performed by the
// repository's primary: bring the new node up to date, hold writes (the
// gateway's WriteGate, lock files that every write session on this node
// holds shared, whichever process serves it) so that pushes under way
// finish and new ones wait, bring it up to date once more, change the
// primary in one transaction, and let the waiting writes go on to the
// new primary. They run beside the replication workers, in cpm-shell
// serve or cpm-shell replicate, and in one process per node at most: the
// one holding DATA/locks/handover.lock.

// handoverEvery is how often a primary looks for moves asked of it.
const handoverEvery = time.Second

// gateWait bounds how long a handover holds writes back: waiting for the
// pushes under way, then the last sync and the switch. A handover that
// runs out of it gives up and lets the writes go.
const gateWait = store.HandoverGateWait

// startHandovers runs the handovers of a cluster node in the background
// until ctx ends (outside a cluster there are none), with the workers'
// syncer, once this process holds the node's handover lock; the channel
// is closed when they stopped.
func (n *Node) startHandovers(ctx context.Context, syncer *transfer.Syncer) <-chan struct{} {
	done := make(chan struct{})
	if n.Self.ID == 0 || n.Gateway.Gate == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		unlock, ok := n.takeHandoverLock(ctx, filepath.Join(n.Dir.Locks(), "handover.lock"))
		if !ok {
			return // ctx ended
		}
		defer unlock()
		n.runHandovers(ctx, syncer)
	}()
	return done
}

// takeHandoverLock takes the lock at path, trying once every
// handoverEvery while another process of this node (serve beside
// replicate) holds it, so that this one takes over should that one stop;
// an error (a lock folder this account cannot write, say) is logged and
// tried again later. It gives up only when ctx ends.
func (n *Node) takeHandoverLock(ctx context.Context, path string) (func(), bool) {
	failures := 0
	for {
		unlock, held, err := transfer.TryLockFile(path, false)
		if held {
			return unlock, true
		}
		wait := handoverEvery
		if err != nil {
			failures++
			wait = moveRetryDelay(failures)
			n.Log.Error().Err(err).Str("lock", path).Dur("retry_in", wait).
				Msg("handover lock: this process performs no handovers until it can take it")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
	}
}

// runHandovers performs the moves asked of this node until ctx ends; a
// move that failed waits (moveRetries) before it is tried again.
func (n *Node) runHandovers(ctx context.Context, syncer *transfer.Syncer) {
	t := time.NewTicker(handoverEvery)
	defer t.Stop()
	retries := moveRetries{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.keeper != nil && !n.keeper.Held() {
			continue // fenced: HandOver would refuse anyway
		}
		moves, err := n.Store.PendingMoves(ctx, n.Self.ID)
		if err != nil {
			continue // the lease keeper and the workers log a database that is away
		}
		retries.keepOnly(moves)
		for _, m := range moves {
			if !retries.due(m, time.Now()) {
				continue
			}
			err := n.handOver(ctx, syncer, m)
			if err == nil || ctx.Err() != nil {
				continue
			}
			s := retries.failed(m, time.Now(), err)
			n.Log.Warn().Err(err).Str("repo", m.Repo).Str("to", m.To.Name).Str("cause", m.Cause).
				Int("attempts", s.attempts).Time("next_try", s.next).Msg("move blocked")
		}
	}
}

// handOver performs one move: sync, hold writes, sync, switch, release.
func (n *Node) handOver(ctx context.Context, syncer *transfer.Syncer, m store.Move) error {
	start := time.Now()
	rp, err := names.ParseRepoPath(m.Repo)
	if err != nil {
		return err
	}
	to, err := n.Store.NodeByName(ctx, m.To.Name)
	if err != nil {
		return err
	}
	// Most of the copying happens here, while pushes still land.
	if err := n.syncForHandover(ctx, syncer, m, rp, to); err != nil {
		return err
	}
	// From here on writes wait: every wait is bounded by gctx (a repack
	// holding the repository's lock, a sync to another server holding the
	// target's), and running out of it gives up and lets them go.
	gctx, cancel := context.WithTimeout(ctx, gateWait)
	defer cancel()
	release, err := n.Gateway.Gate.Exclusive(gctx, m.Repo)
	if err != nil {
		return err
	}
	defer release()
	if err := n.syncForHandover(gctx, syncer, m, rp, to); err != nil {
		return err
	}
	unlock, err := n.holdTargetCurrent(gctx, syncer, m, rp, to)
	if err != nil {
		return err
	}
	defer unlock()
	e, err := n.commitHandOver(ctx, m)
	if err != nil {
		return err
	}
	n.logElection(e)
	n.failover.Elected(e)
	n.Log.Info().Str("repo", e.Repo).Str("to", e.To).Int64("duration_ms", time.Since(start).Milliseconds()).Msg("handover")
	return nil
}

// commitWait bounds the switch's transaction on its own: it starts
// once the target is current, however much of gateWait that took.
const commitWait = 10 * time.Second

// commitHandOver changes m's primary to its target. An error may come
// after the transaction committed (the database's answer lost): the
// placement, read again, says whether the switch happened.
func (n *Node) commitHandOver(ctx context.Context, m store.Move) (store.Election, error) {
	cctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	e, err := n.Store.HandOver(cctx, store.Actor{Name: "node:" + n.Self.Name}, m, n.Self.ID)
	if err == nil {
		return e, nil
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), commitWait)
	defer rcancel()
	rp, perr := names.ParseRepoPath(m.Repo)
	if perr != nil {
		return e, err
	}
	p, perr := n.Store.Placement(rctx, n.Self.Name, rp.Org, rp.Repo)
	if perr != nil || p.Primary.Name != m.To.Name {
		return e, err
	}
	return store.Election{RepoID: m.RepoID, Repo: m.Repo, From: n.Self.Name, To: m.To.Name,
		Epoch: p.Epoch, Generation: p.Generation, Cause: m.Cause}, nil
}

// syncForHandover brings the target's replica to the repository's
// generation, unless it holds it already, and records the sync.
func (n *Node) syncForHandover(ctx context.Context, syncer *transfer.Syncer, m store.Move, rp names.RepoPath, to store.Server) error {
	j, err := n.Store.JobFor(ctx, m.RepoID, to.ID)
	if err != nil {
		return err
	}
	gen, err := n.Store.RepoGeneration(ctx, m.RepoID)
	if err != nil {
		return err
	}
	if j.RepoGeneration >= gen {
		return nil
	}
	res, err := syncer.Sync(ctx, rp, transfer.TargetOf(to), j.LastSuccessAt.IsZero() || j.Attempts > 0)
	if err != nil {
		return fmt.Errorf("sync %s to %s for the handover: %w", m.Repo, to.Name, err)
	}
	if err := n.Store.Done(ctx, j, j.Generation, gen, res.Fingerprint, res.Bytes); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		return err
	}
	return nil
}

// holdTargetCurrent holds the repository's sync locks for the target
// once its refs are this copy's (transfer.Syncer.HoldIfCurrent), syncing
// again if a worker's sync from an older snapshot landed after the last
// one: else that sync could still finish after the change of primary
// and put the new primary's refs back.
func (n *Node) holdTargetCurrent(ctx context.Context, syncer *transfer.Syncer, m store.Move, rp names.RepoPath, to store.Server) (func(), error) {
	t := transfer.TargetOf(to)
	for range 3 {
		unlock, current, err := syncer.HoldIfCurrent(ctx, rp, t)
		if err != nil {
			return nil, fmt.Errorf("check %s on %s for the handover: %w", m.Repo, to.Name, err)
		}
		if current {
			return unlock, nil
		}
		if _, err := syncer.Sync(ctx, rp, t, false); err != nil {
			return nil, fmt.Errorf("sync %s to %s for the handover: %w", m.Repo, to.Name, err)
		}
	}
	return nil, fmt.Errorf("hand %s over to %s: its copy keeps differing from this one", m.Repo, to.Name)
}
