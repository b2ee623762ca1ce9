package transfer

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"cpm/internal/names"
)

// openLocked opens ORG/REPO and takes its lock; callers defer unlock.
func (s *Syncer) openLocked(repo names.RepoPath) (dir string, unlock func(), err error) {
	if dir, err = s.Root.Open(repo.Org, repo.Repo); err != nil {
		return "", nil, err
	}
	if unlock, err = s.Lock(repo); err != nil {
		return "", nil, err
	}
	return dir, unlock, nil
}

// Lock takes the repository's lock, which maintenance (repack) takes too,
// so that a sync never copies a repository in the middle of a repack.
func (s *Syncer) Lock(repo names.RepoPath) (func(), error) {
	return LockFile(filepath.Join(s.LockDir, repo.Org, repo.Repo+".lock"))
}

// LockFile takes an exclusive lock on the file at path (created, 0600,
// with its folder), waiting for it; the lock holds across processes.
func LockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// TryLockFile is LockFile without the wait: held reports false, with no
// error, when another process or goroutine holds the lock.
func TryLockFile(path string) (unlock func(), held bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, true, nil
}
