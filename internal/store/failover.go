package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Fencing: a write to a cluster repository is accepted only by its
// primary, under the epoch the session read when it started, while that
// node's lease is live by the database's clock. An election bumps the
// epoch in the transaction that changes the primary, so a write accepted
// under the old epoch can never be recorded over the new primary's.

// ErrFenced means this node's lease ran out: it takes no write (and
// serves no read it cannot prove current) until it renews it.
var ErrFenced = errors.New("this node lost its lease; try again")

// ErrNotPrimary means the repository's primary or epoch changed since the
// write was accepted: a newer primary takes its writes now.
var ErrNotPrimary = errors.New("this node is no longer the repository's primary; try again")

// Writer is who accepts a write in a cluster: the node (its server id)
// and the repository's epoch when the session started. The zero Writer
// is a write outside a cluster (or on a repository with no primary),
// which is not fenced.
type Writer struct {
	Node  int64
	Epoch int64
}

// Fenced reports whether the write is subject to fencing.
func (w Writer) Fenced() bool { return w.Node != 0 }

// RenewLease extends node id's lease to the database's now plus lease
// and records the heartbeat, in one statement on the database's clock.
func (s *Store) RenewLease(ctx context.Context, nodeID int64, lease time.Duration) error {
	res, err := s.db.ExecContext(ctx, `UPDATE servers SET heartbeat_at = `+s.db.d.clock()+`, lease_until = `+s.db.d.clockPlus("?")+`
		WHERE id = ? AND role = 'node'`, lease.Milliseconds(), nodeID)
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("renew lease: node %d %w", nodeID, ErrNotFound)
	}
	return nil
}

// rowQuerier is a connection or a transaction.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// fenceCheck: nil when w's node is the repository's primary under w's
// epoch with a live lease by the database's clock; ErrFenced or
// ErrNotPrimary otherwise.
func (s *Store) fenceCheck(ctx context.Context, q rowQuerier, repoID int64, w Writer) error {
	var primary sql.NullInt64
	var epoch int64
	var live bool
	err := q.QueryRowContext(ctx, `
		SELECT r.primary_id, r.epoch, coalesce((SELECT `+leaseLive(s.db.d, "n")+` FROM servers n WHERE n.id = ?), false)
		FROM repos r WHERE r.id = ?`, w.Node, repoID).Scan(&primary, &epoch, &live)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("repository %d %w", repoID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("check the write's fence: %w", err)
	}
	switch {
	case !live:
		return ErrFenced
	case !primary.Valid || primary.Int64 != w.Node || epoch != w.Epoch:
		return ErrNotPrimary
	}
	return nil
}

// CheckWriter reports whether w may write ORG/REPO now (pre-receive):
// nil, ErrFenced, ErrNotPrimary, or ErrNotFound. The zero Writer always
// may.
func (s *Store) CheckWriter(ctx context.Context, org, repo string, w Writer) error {
	if !w.Fenced() {
		return nil
	}
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return err
	}
	return s.fenceCheck(ctx, s.db, r.ID, w)
}

// MarkDirtyAs is MarkDirty for a write accepted by w: in the same
// transaction it checks the fence (ErrFenced, ErrNotPrimary: nothing is
// recorded) and holds the repository's row, so no election can slip in
// between. It returns the repository's new generation.
func (s *Store) MarkDirtyAs(ctx context.Context, org, repo string, w Writer) (int64, error) {
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	defer tx.Rollback()
	var gen int64
	// The UPDATE takes the row lock first: an election waits for it, or
	// this waits for the election and then sees the new epoch.
	if err := tx.QueryRowContext(ctx, `UPDATE repos SET generation = generation + 1 WHERE id = ? RETURNING generation`, r.ID).Scan(&gen); err != nil {
		return 0, fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	if w.Fenced() {
		if err := s.fenceCheck(ctx, tx, r.ID, w); err != nil {
			return 0, fmt.Errorf("%s: %w", r.FullName(), err)
		}
	}
	if _, err := tx.ExecContext(ctx, markDirtySQL, r.ID, now()); err != nil {
		return 0, fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	return gen, nil
}
