package transfer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"cpm/internal/names"
)

// openLocked opens ORG/REPO and takes its lock, waiting until ctx ends;
// callers defer unlock.
func (s *Syncer) openLocked(ctx context.Context, repo names.RepoPath) (dir string, unlock func(), err error) {
	if dir, err = s.Root.Open(repo.Org, repo.Repo); err != nil {
		return "", nil, err
	}
	if unlock, err = LockFileContext(ctx, s.repoLock(repo), false); err != nil {
		return "", nil, fmt.Errorf("lock %s: %w", repo, err)
	}
	return dir, unlock, nil
}

// Lock takes the repository's lock, which maintenance (repack) takes too,
// so that a sync never copies a repository in the middle of a repack;
// the wait ends with ctx.
func (s *Syncer) Lock(ctx context.Context, repo names.RepoPath) (func(), error) {
	unlock, err := LockFileContext(ctx, s.repoLock(repo), false)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", repo, err)
	}
	return unlock, nil
}

func (s *Syncer) repoLock(repo names.RepoPath) string {
	return filepath.Join(s.LockDir, repo.Org, repo.Repo+".lock")
}

// lockTarget takes the lock of ORG/REPO on the target named name,
// waiting until ctx ends.
func (s *Syncer) lockTarget(ctx context.Context, repo names.RepoPath, name string) (func(), error) {
	unlock, err := LockFileContext(ctx, s.targetLock(repo, name), false)
	if err != nil {
		return nil, fmt.Errorf("lock %s for %s: %w", repo, name, err)
	}
	return unlock, nil
}

func (s *Syncer) targetLock(repo names.RepoPath, name string) string {
	return filepath.Join(s.LockDir, repo.Org, repo.Repo+".to", name+".lock")
}

// LockFile takes an exclusive lock on the file at path (created, 0600,
// with its folder), waiting for it; the lock holds across processes.
func LockFile(path string) (func(), error) {
	return LockFileContext(context.Background(), path, false)
}

// Lock files are flock(2) locks, which have no timed wait: a wait that
// ctx can end tries without blocking, sleeping between tries from
// lockPollMin, doubling up to lockPollMax.
const (
	lockPollMin = time.Millisecond
	lockPollMax = 50 * time.Millisecond
)

// LockFileContext takes a lock on the file at path (created, 0600, with
// its folder), shared or exclusive, waiting until ctx ends; the lock
// holds across processes and goes with the process. The func releases
// it.
func LockFileContext(ctx context.Context, path string, shared bool) (func(), error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := flockContext(ctx, f, flockHow(shared)); err != nil {
		f.Close()
		return nil, err
	}
	return unlocker(f), nil
}

// TryLockFile takes a lock on the file at path (as LockFileContext) if
// no other holder keeps it from being taken now: held reports whether
// it did, and an error that it could not try (the file or its folder
// cannot be created or opened).
func TryLockFile(path string, shared bool) (unlock func(), held bool, err error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, false, err
	}
	err = flock(f, flockHow(shared)|syscall.LOCK_NB)
	if err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return unlocker(f), true, nil
}

// openLockFile opens (creates, 0600, with its folder) the lock file at
// path.
func openLockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func flockHow(shared bool) int {
	if shared {
		return syscall.LOCK_SH
	}
	return syscall.LOCK_EX
}

func unlocker(f *os.File) func() {
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
}

// flockContext takes the flock how on f, waiting until ctx ends (a
// context that never ends: a plain blocking wait).
func flockContext(ctx context.Context, f *os.File, how int) error {
	if ctx.Done() == nil {
		return flock(f, how)
	}
	wait := lockPollMin
	for {
		err := flock(f, how|syscall.LOCK_NB)
		if err != syscall.EWOULDBLOCK {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

// flock is flock(2), tried again when a signal interrupted it.
func flock(f *os.File, how int) error {
	for {
		if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
			return err
		}
	}
}
