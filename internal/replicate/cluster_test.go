package replicate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/remote"
	"cpm/internal/store"
)

// The workers of a cluster node run Beat (pins, revocations) every
// BeatEvery; the node's lease is the lease keeper's (internal/lease).
func TestHeartbeat(t *testing.T) {
	var beats sync.WaitGroup
	beats.Add(3)
	var n int
	var mu sync.Mutex
	w := &Workers{Self: 1, Log: zerolog.Nop(), BeatEvery: 10 * time.Millisecond,
		Beat: func(context.Context) {
			mu.Lock()
			defer mu.Unlock()
			if n++; n <= 3 {
				beats.Done()
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.heartbeat(ctx) }()
	beats.Wait()
	cancel()
	<-done
}

func TestMine(t *testing.T) {
	for _, c := range []struct {
		self, primary int64
		want          bool
	}{
		{0, 0, true},  // outside a cluster: everything
		{7, 0, true},  // a repository without a primary
		{7, 7, true},  // this node is its primary
		{7, 8, false}, // another node's: its primary looks after it
		{0, 8, false}, // a data directory that is not a node leaves placed ones alone
	} {
		w := &Workers{Self: c.self}
		if got := w.mine(c.primary); got != c.want {
			t.Errorf("self %d, primary %d: %v", c.self, c.primary, got)
		}
	}
}

// A node that refuses this node's key is waited for, like a neighbour,
// not blocked: it may run a cpm that does not know nodes yet.
func TestNodeRefusingTheKeyIsNotBlocked(t *testing.T) {
	refused := &remote.Error{Code: 255, Stderr: "Permission denied (publickey)."}
	w := &Workers{}
	if w.blockIfNeeded(context.Background(), store.Server{ID: 1, Name: "n2", Role: store.Node}, refused) {
		t.Error("a node was blocked")
	}
	// A backup shared by the cluster that lacks this node's key blocks
	// nothing for the nodes whose keys it has.
	w.Self = 7
	if w.blockIfNeeded(context.Background(), store.Server{ID: 2, Name: "b1", Role: store.Backup}, refused) {
		t.Error("a node blocked a backup for the whole cluster")
	}
}
