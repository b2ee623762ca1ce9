package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/lease"
	"cpm/internal/metrics"
	"cpm/internal/store"
)

// electEvery is how often a live node looks for repositories whose
// primary's lease ran out: with the default lease of 10 s a dead
// primary's repositories have a new one within about 12 s.
const electEvery = time.Second

// startLeases starts, on a cluster node, the lease keeper (which fences
// the gateway while the lease is not held) and the election loop; reg,
// when set, gets their metrics. It does nothing outside a cluster or when
// they run already. The channel is closed once both stopped (ctx ended).
func (n *Node) startLeases(ctx context.Context, reg *prometheus.Registry) <-chan struct{} {
	done := make(chan struct{})
	if n.Self.ID == 0 || n.keeper != nil {
		close(done)
		return done
	}
	k := &lease.Keeper{Store: n.Store, Node: n.Self.ID, Lease: n.Conf.Lease,
		Log: n.Log.With().Str("component", "lease").Logger()}
	var m *metrics.Failover
	if reg != nil {
		m = metrics.NewFailover(reg, k.Held)
		k.Renewed = m.Renewed
	}
	n.keeper, n.failover = k, m
	n.Gateway.Fence = k
	// A first renewal before the listeners open, so that the node does
	// not turn its first clients away; failing, Run keeps trying.
	if err := k.Renew(ctx); err != nil {
		n.Log.Warn().Err(err).Msg("lease: first renewal failed; this node takes no session until it renews")
	}
	go func() {
		defer close(done)
		ectx, stop := context.WithCancel(ctx)
		elected := make(chan struct{})
		go func() { defer close(elected); n.elect(ectx, k, m) }()
		k.Run(ctx)
		stop()
		<-elected
	}()
	return done
}

// elect runs an election round every electEvery while this node's lease
// holds, until ctx ends.
func (n *Node) elect(ctx context.Context, k *lease.Keeper, m *metrics.Failover) {
	t := time.NewTicker(electEvery)
	defer t.Stop()
	actor := store.Actor{Name: "node:" + n.Self.Name}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !k.Held() {
			continue
		}
		for _, e := range n.electionRound(ctx, actor) {
			n.logElection(e)
			m.Elected(e)
		}
	}
}

// electionRound carries out one round's changes of primary: a new
// primary for every repository whose primary's lease ran out.
func (n *Node) electionRound(ctx context.Context, actor store.Actor) []store.Election {
	es, err := n.Store.ElectPrimaries(ctx, actor, n.Conf.SyncReplicas)
	if err != nil && ctx.Err() == nil {
		n.Log.Warn().Err(err).Msg("election failed")
	}
	return es
}

// logElection is the one event of a change of primary.
func (n *Node) logElection(e store.Election) {
	n.Log.Warn().Str("repo", e.Repo).Str("from", e.From).Str("to", e.To).Int64("epoch", e.Epoch).
		Int64("generation", e.Generation).Str("cause", e.Cause).Int64("without_ms", e.Without.Milliseconds()).
		Msg("election")
}

// storeFence is the fence of a cluster node's processes that keep no
// lease themselves (the OpenSSH forced command): the database says, once
// per session, whether the lease that the node's serve or replicate
// process renews holds. A database that does not answer is no proof.
type storeFence struct {
	st *store.Store
	id int64
}

func (f storeFence) Held() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	held, err := f.st.LeaseHeld(ctx, f.id)
	return err == nil && held
}
