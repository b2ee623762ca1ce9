package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// LFSLock is a Git LFS file lock.
type LFSLock struct {
	ID       int64
	RepoID   int64
	Path     string
	Owner    string
	LockedAt time.Time
}

const lfsLockSelect = `SELECT id, repo_id, path, owner, locked_at FROM lfs_locks`

func scanLFSLock(sc scanner) (LFSLock, error) {
	var l LFSLock
	var at string
	err := sc.Scan(&l.ID, &l.RepoID, &l.Path, &l.Owner, &at)
	l.LockedAt = parseTime(at)
	return l, err
}

// CreateLFSLock locks path of the repository for owner, audited. If the
// path is locked already, it returns that lock with ErrExists.
func (s *Store) CreateLFSLock(ctx context.Context, a Actor, repoID int64, repo, path, owner string) (LFSLock, error) {
	var l LFSLock
	err := s.change(ctx, a, "lfs.lock", repo, map[string]any{"path": path}, keepsMeta, func(tx *Tx) error {
		id, err := tx.InsertID(ctx, `INSERT INTO lfs_locks (repo_id, path, owner, locked_at) VALUES (?, ?, ?, ?)`,
			repoID, path, owner, now())
		if isUnique(err) {
			return exists("lock on", path)
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", path, err)
		}
		l, err = scanLFSLock(tx.QueryRowContext(ctx, lfsLockSelect+` WHERE id = ?`, id))
		return err
	})
	if errors.Is(err, ErrExists) {
		held, herr := scanLFSLock(s.db.QueryRowContext(ctx, lfsLockSelect+` WHERE repo_id = ? AND path = ?`, repoID, path))
		if herr != nil {
			return LFSLock{}, fmt.Errorf("lock %s: %w", path, herr)
		}
		return held, err
	}
	return l, err
}

// LFSLock returns the repository's lock with id, or ErrNotFound.
func (s *Store) LFSLock(ctx context.Context, repoID, id int64) (LFSLock, error) {
	l, err := scanLFSLock(s.db.QueryRowContext(ctx, lfsLockSelect+` WHERE repo_id = ? AND id = ?`, repoID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return LFSLock{}, ErrNotFound
	}
	return l, err
}

// LFSLocks lists the repository's locks with an id of at least from, in
// id order, at most limit of them; path, when set, keeps only its lock.
func (s *Store) LFSLocks(ctx context.Context, repoID int64, path string, from int64, limit int) ([]LFSLock, error) {
	rows, err := s.db.QueryContext(ctx, lfsLockSelect+` WHERE repo_id = ? AND id >= ? AND (? = '' OR path = ?) ORDER BY id LIMIT ?`,
		repoID, from, path, path, limit)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []LFSLock
	for rows.Next() {
		l, err := scanLFSLock(rows)
		if err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// DeleteLFSLock removes the lock l as it was read, audited: only if its
// id, path and owner are still the same, in one statement, so that an
// unlock decided on a lock that has since gone never removes another;
// ErrNotFound if it is gone.
func (s *Store) DeleteLFSLock(ctx context.Context, a Actor, repoID int64, repo string, l LFSLock) error {
	details := map[string]any{"path": l.Path, "owner": l.Owner, "id": strconv.FormatInt(l.ID, 10)}
	return s.change(ctx, a, "lfs.unlock", repo, details, keepsMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM lfs_locks WHERE repo_id = ? AND id = ? AND path = ? AND owner = ?`,
			repoID, l.ID, l.Path, l.Owner)
		if err != nil {
			return fmt.Errorf("unlock %s: %w", l.Path, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}
