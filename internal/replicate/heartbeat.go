package replicate

import (
	"context"
	"time"
)

// HeartbeatEvery is how often a cluster node's workers run Beat.
const HeartbeatEvery = 2 * time.Second

// heartbeat runs Beat every HeartbeatEvery until ctx ends. The node's
// sign of life is its lease, which the node's lease keeper renews
// (internal/lease), not the workers: a node whose workers run but whose
// gateway cannot take writes must not look up.
func (w *Workers) heartbeat(ctx context.Context) {
	every := w.BeatEvery
	if every <= 0 {
		every = HeartbeatEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if w.Beat != nil {
			w.Beat(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mine reports whether this node's workers look after a repository whose
// primary is primaryID: every one outside a cluster (0), in a cluster
// those it is primary of. The others are their primaries' business.
func (w *Workers) mine(primaryID int64) bool { return primaryID == 0 || primaryID == w.Self }
