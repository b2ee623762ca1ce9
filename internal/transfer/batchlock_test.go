package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// TestBatchLeavesBusyOut: a batch does not wait for a repository whose
// lock (or its replica's) another holds, as a handover does under the
// write gate: it leaves it out at once, Busy, neither synced nor failed,
// for the worker to sync alone; the other repository keeps its locks.
func TestBatchLeavesBusyOut(t *testing.T) {
	root := t.TempDir()
	s := &Syncer{Root: repos.Root{Dir: filepath.Join(root, "repos")}, LockDir: filepath.Join(root, "locks"), TempDir: t.TempDir()}
	for _, r := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(root, "repos", "acme", r+".git"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	repo := func(r string) names.RepoPath { return names.RepoPath{Org: "acme", Repo: r} }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, err := s.Lock(ctx, repo("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	heldTarget, err := s.lockTarget(ctx, repo("b"), "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer heldTarget()
	items := []*BatchItem{{Repo: repo("a")}, {Repo: repo("b")}}
	start := time.Now()
	s.SyncBatch(ctx, remote.Target{Name: "backup"}, items)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the batch waited %v for a held lock", d)
	}
	for _, it := range items {
		if !it.Busy || it.Err != nil {
			t.Errorf("%s: busy %v, err %v; want busy, no error", it.Repo, it.Busy, it.Err)
		}
	}
	// A busy repository holds no lock of the batch's.
	unlock, ok, err := TryLockFile(s.repoLock(repo("b")), false)
	if err != nil || !ok {
		t.Fatalf("b's lock after the batch: %v %v", ok, err)
	}
	unlock()
}
