package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A lock file's wait ends with its context (SendPack's wait for the
// target's lock, the handover's for the repository's); shared holders
// share, an exclusive one excludes both kinds, and a withdrawn wait
// leaves the lock free.
func TestLockFileContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme", "web.to", "node-2.lock")
	ctx := context.Background()
	a, err := LockFileContext(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LockFileContext(ctx, path, true)
	if err != nil {
		t.Fatal("two shared holders:", err)
	}
	within := func(shared bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		unlock, err := LockFileContext(ctx, path, shared)
		if err == nil {
			unlock()
		}
		return err
	}
	if err := within(false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive beside shared holders: %v", err)
	}
	a()
	b()
	ex, err := LockFileContext(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, shared := range []bool{true, false} {
		if err := within(shared); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("shared=%v beside an exclusive holder: %v", shared, err)
		}
	}
	// A withdrawn wait closes its file: the fds left are the holder's.
	fds := openFDs(t)
	for range 5 {
		within(false)
		if _, held, err := TryLockFile(path, true); held || err != nil {
			t.Fatalf("TryLockFile beside an exclusive holder: %v %v", held, err)
		}
	}
	if got := openFDs(t); got != fds {
		t.Fatalf("%d files open after withdrawn waits, %d before", got, fds)
	}
	ex()
	if err := within(false); err != nil {
		t.Fatalf("after the waits withdrew: %v", err)
	}
	unlock, held, err := TryLockFile(path, false)
	if !held || err != nil {
		t.Fatalf("TryLockFile on a free lock: %v %v", held, err)
	}
	unlock()
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}
