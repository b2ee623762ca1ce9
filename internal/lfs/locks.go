package lfs

import (
	"context"
	"errors"
	"time"
)

// Lock is a file lock of a repository (git lfs lock).
type Lock struct {
	ID       string
	Path     string
	Owner    string // the name of whoever took it
	LockedAt time.Time
}

var (
	// ErrLockExists means the path is locked already; the lock returned
	// with it is the one that holds it.
	ErrLockExists = errors.New("path is locked")
	// ErrNoLock means no such lock.
	ErrNoLock = errors.New("no such lock")
)

// Locks keeps one repository's locks.
type Locks interface {
	// Create locks path for owner, or returns the lock that holds it
	// with ErrLockExists.
	Create(ctx context.Context, path, owner string) (Lock, error)
	// List returns up to limit locks ordered by id, starting at cursor
	// ("" for the first), optionally only the one for path or with id;
	// next is the cursor of the following page, "" at the end.
	List(ctx context.Context, path, id, cursor string, limit int) (locks []Lock, next string, err error)
	// Get returns the lock with id, or ErrNoLock.
	Get(ctx context.Context, id string) (Lock, error)
	// Delete removes l, as Get returned it; ErrNoLock if it is gone.
	Delete(ctx context.Context, l Lock) error
}
