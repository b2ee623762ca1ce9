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
	push := shared(t, g, "acme/web")
	other := shared(t, g, "acme/api") // another repository is never held
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
	go func() { shared(t, g, "acme/web")(); close(got) }()
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

func shared(t *testing.T, g *WriteGate, repo string) func() {
	t.Helper()
	release, err := g.Shared(context.Background(), repo)
	if err != nil {
		t.Error(err)
		return func() {}
	}
	return release
}

// A handover that gives up while a slow push holds the gate withdraws:
// new pushes are not held back behind it.
func TestWriteGateHandoverGivesUp(t *testing.T) {
	g := NewWriteGate()
	slow := shared(t, g, "acme/web")
	defer slow()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Exclusive(ctx, "acme/web"); err == nil {
		t.Fatal("a handover went ahead of a push under way")
	}
	got := make(chan struct{})
	go func() { shared(t, g, "acme/web")(); close(got) }()
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("a new push waits behind a handover that gave up")
	}
	// A push waiting for a handover ends with its session.
	release, err := g.Exclusive(context.Background(), "acme/api")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer scancel()
	if _, err := g.Shared(sctx, "acme/api"); err == nil {
		t.Fatal("a push ran during a handover")
	}
}
