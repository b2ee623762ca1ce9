package gateway

import (
	"context"
	"testing"
	"time"
)

// The gate: writes share it; a handover waits for those under way,
// holds new ones back, and a handover that gives up lets them go.
func TestWriteGate(t *testing.T) {
	g := NewWriteGate()
	push := g.Shared("acme/web")
	other := g.Shared("acme/api") // another repository is never held
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Exclusive(ctx, "ACME/web"); err == nil {
		t.Fatal("a handover went ahead of a push under way")
	}
	push()
	release, err := g.Exclusive(context.Background(), "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() { g.Shared("acme/web")(); close(got) }()
	select {
	case <-got:
		t.Fatal("a new push ran during the handover")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-got
	other()
	if g.mu.Lock(); len(g.repos) != 0 {
		t.Errorf("gates left over: %v", g.repos)
	}
	g.mu.Unlock()
}
