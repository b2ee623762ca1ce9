package replicate

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/remote"
	"cpm/internal/store"
)

// syncBuffer is a log sink the heartbeat goroutine writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The heartbeat moves the node's heartbeat_at and runs Beat each time; a
// failing heartbeat is logged once, not at every beat.
func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	self, _, err := st.JoinCluster(ctx, store.Actor{Name: "test"}, store.NodeSpec{Name: "n1", Host: "127.0.0.2", Port: 2222,
		PeerKey: "ssh-ed25519 AAAA1", PeerFingerprint: "SHA256:1", HostKeyPEM: "pem", HostKey: "ssh-ed25519 AAAAh"})
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	var beats sync.WaitGroup
	beats.Add(3)
	var n int
	var mu sync.Mutex
	w := &Workers{Store: st, Self: self.ID + 1000, Log: zerolog.New(&log), BeatEvery: 10 * time.Millisecond,
		Beat: func(context.Context) {
			mu.Lock()
			defer mu.Unlock()
			if n++; n <= 3 {
				beats.Done()
			}
		}}
	run := func() {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.heartbeat(ctx) }()
		beats.Wait()
		cancel()
		<-done
	}
	run() // a node id the database does not know: three failing beats
	if got := strings.Count(log.String(), "heartbeat failed"); got != 1 {
		t.Errorf("%d failures logged: %s", got, log.String())
	}
	w.Self, n = self.ID, 0
	beats.Add(3)
	before := time.Now().Add(-time.Second)
	run()
	nodes, err := st.Nodes(ctx)
	if err != nil || len(nodes) != 1 || !nodes[0].HeartbeatAt.After(before) {
		t.Fatalf("heartbeat not recorded: %+v %v", nodes, err)
	}
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
}
