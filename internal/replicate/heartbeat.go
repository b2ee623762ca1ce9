package replicate

import (
	"context"
	"time"
)

// HeartbeatEvery is how often a cluster node's workers say they are
// alive; `lease` (default 10s) without one makes the node down.
const HeartbeatEvery = 2 * time.Second

// heartbeat records every HeartbeatEvery that this node's workers are
// alive, then runs Beat, until ctx ends. Only a change is logged: the
// first failure and the recovery, not every beat.
func (w *Workers) heartbeat(ctx context.Context) {
	every := w.BeatEvery
	if every <= 0 {
		every = HeartbeatEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		err := w.Store.Heartbeat(ctx, w.Self)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			w.Log.Warn().Err(err).Msg("heartbeat failed")
			failing = true
		case err == nil && failing:
			w.Log.Info().Msg("heartbeat recovered")
			failing = false
		}
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
