package wake

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestWake(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "w.sock")
	woke := make(chan struct{}, 1)
	retried := make(chan struct{}, 1)
	if err := Listen(ctx, path, woke, func() { retried <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	Work(path)
	select {
	case <-woke:
	case <-time.After(2 * time.Second):
		t.Fatal("no wake-up")
	}
	select {
	case <-retried:
		t.Fatal("a push wake-up reset the breakers")
	default:
	}
	Retry(path)
	select {
	case <-retried:
	case <-time.After(2 * time.Second):
		t.Fatal("retry did not reach the workers")
	}
}
