package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/store"
	"cpm/internal/transfer"
)

// A move that failed is not tried again at the next tick (the writers it
// held back would lose the race for the turnstile every time) but after
// a wait of a few seconds that grows to minutes; moves no longer asked
// are forgotten.
func TestMoveRetries(t *testing.T) {
	r := moveRetries{}
	m := store.Move{RepoID: 7, Repo: "acme/web", To: store.Server{Name: "node-2"}}
	other := store.Move{RepoID: 8, Repo: "acme/api", To: store.Server{Name: "node-2"}}
	now := time.Now()
	if !r.due(m, now) {
		t.Fatal("a move never tried is not due")
	}
	var last time.Duration
	for n := 1; n <= 12; n++ {
		s := r.failed(m, now, errors.New("hold writes to acme/web: context deadline exceeded"))
		wait := s.next.Sub(now)
		if s.attempts != n || !strings.Contains(s.last, "deadline") {
			t.Fatalf("attempt %d: %+v", n, s)
		}
		if wait < 4*time.Second || wait > 6*time.Minute {
			t.Fatalf("attempt %d: waits %v", n, wait)
		}
		if n > 3 && wait < last/2 {
			t.Fatalf("attempt %d: waits %v after %v", n, wait, last)
		}
		if r.due(m, now.Add(time.Second)) || !r.due(m, s.next) {
			t.Fatalf("attempt %d: due at the next tick, or not after its wait", n)
		}
		last = wait
	}
	if last < 3*time.Minute {
		t.Fatalf("after 12 failures a move waits only %v", last)
	}
	if !r.due(other, now) {
		t.Fatal("another repository's move waits for this one's failures")
	}
	r.keepOnly([]store.Move{other})
	if !r.due(m, now) {
		t.Fatal("a move no longer asked keeps its wait")
	}
}

// The handover lock: an error taking it is logged (not taken for the end
// of the process) and tried again until ctx ends; a lock another process
// holds is taken once that one lets it go.
func TestTakeHandoverLock(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	n := &Node{Log: zerolog.New(&logged)}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, ok := n.takeHandoverLock(ctx, filepath.Join(notDir, "handover.lock")); ok {
		t.Fatal("took a lock that cannot be created")
	}
	if !strings.Contains(logged.String(), "not a directory") {
		t.Fatalf("the error was not logged: %q", logged.String())
	}

	path := filepath.Join(dir, "locks", "handover.lock")
	other, err := transfer.LockFileContext(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, other)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, ok := n.takeHandoverLock(ctx, path)
	if !ok {
		t.Fatal("the lock was not taken after its holder let it go")
	}
	unlock()
}
