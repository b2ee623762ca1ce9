package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Synchronous replication: before a push is acknowledged to its client,
// the primary writes it into replica nodes' copies (cpm-peer
// receive-pack), and each replica records the generation it now holds in
// a ReplicaWrite. The write holds the repository's row shared from its
// start to its commit, so an election (which locks the row for update)
// either happens before it, and the write is refused for its stale
// primary or epoch, or after it, and then counts the generation it
// committed: an acknowledged push is never missing from election's bar.

// ErrHeldDiverged refuses a write to a replica that is a former primary
// whose own writes are still to be saved under refs/cpm/diverged.
var ErrHeldDiverged = errors.New("this copy holds a former primary's writes not yet saved; it takes no synchronous write")

// ErrNoReplica refuses a write to a node that holds no replica (no
// replication job) of the repository; it is an ErrNotFound.
var ErrNoReplica = fmt.Errorf("no replica here: %w", ErrNotFound)

// ReplicaWrite is one synchronous write into this node's replica of a
// repository, open from BeginReplicaWrite to Commit or Rollback.
type ReplicaWrite struct {
	tx         *Tx
	repoID     int64
	self       int64
	generation int64 // the repository's generation when the write began
}

// BeginReplicaWrite opens the write of node from (the repository's
// primary, under epoch) into node self's replica of repository repoID.
// It refuses (nothing held) unless from is the primary under that epoch
// with a live lease, and self holds a replica (a replication job) whose
// former-primary writes, if any, are saved: ErrNotPrimary, ErrFenced,
// ErrNotFound (ErrNoReplica), ErrHeldDiverged. Every check is one
// statement under the row's lock: nothing is taken from an earlier write.
func (s *Store) BeginReplicaWrite(ctx context.Context, repoID, from, self, epoch int64) (*ReplicaWrite, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin replica write: %w", err)
	}
	w := &ReplicaWrite{tx: tx, repoID: repoID, self: self}
	if err := w.check(ctx, s.db.d, from, epoch, idleBound(ctx)); err != nil {
		tx.Rollback()
		return nil, err
	}
	return w, nil
}

// replicaWriteIdle is how long a replica write without a deadline may
// sit idle in its transaction (the row held shared) before the server
// ends it.
const replicaWriteIdle = 30 * time.Second

// idleBound is the idle_in_transaction_session_timeout (ms) that makes
// PostgreSQL end the write's transaction, and so free the repository's
// row, a little after ctx's deadline even if this process can no longer
// say so (its machine died): elections and the primary's next
// MarkDirtyAs wait for that row. ctx's own end rolls the transaction
// back while this process lives.
func idleBound(ctx context.Context) string {
	idle := replicaWriteIdle
	if dl, ok := ctx.Deadline(); ok {
		idle = time.Until(dl) + 2*time.Second
	}
	return strconv.FormatInt(max(idle.Milliseconds(), 1000), 10)
}

// check reads, in one statement, the repository's row (held shared on
// PostgreSQL; SQLite's write transaction holds the whole database), the
// sender's lease and self's job; on PostgreSQL the same statement bounds
// the transaction's idle time (boundIdle, a set_config).
func (w *ReplicaWrite) check(ctx context.Context, d dialect, from, epoch int64, boundIdle string) error {
	share, idle := "", ""
	if d == postgres {
		share = " FOR SHARE OF r"
		idle = "set_config('idle_in_transaction_session_timeout', ?, true), "
	}
	args := []any{from, w.self}
	if idle != "" {
		args = append([]any{boundIdle}, args...)
	}
	args = append(args, w.repoID)
	var primary, diverge sql.NullInt64
	var current int64
	var live bool
	var ignored sql.NullString
	dest := []any{&primary, &current, &w.generation, &live, &diverge}
	if idle != "" {
		dest = append([]any{&ignored}, dest...)
	}
	err := w.tx.QueryRowContext(ctx, `
		SELECT `+idle+`r.primary_id, r.epoch, r.generation,
		       coalesce((SELECT `+leaseLive(d, "n")+` FROM servers n WHERE n.id = ?), false),
		       (SELECT j.diverge_epoch FROM replication_jobs j JOIN servers s ON s.id = j.server_id
		        WHERE j.repo_id = r.id AND j.server_id = ? AND s.role = 'node')
		FROM repos r WHERE r.id = ?`+share, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("repository %d %w", w.repoID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("begin replica write: %w", err)
	}
	switch {
	case !primary.Valid || primary.Int64 != from || current != epoch:
		return ErrNotPrimary
	case !live:
		return fmt.Errorf("the sending primary: %w", ErrFenced)
	case !diverge.Valid:
		return fmt.Errorf("this node holds no replica of repository %d: %w", w.repoID, ErrNoReplica)
	case diverge.Int64 != 0:
		return ErrHeldDiverged
	}
	return nil
}

// Commit records that the replica now holds generation gen (never less
// than it held) and ends the write. gen must lie between 0 and the
// repository's generation when the write began: a primary cannot make a
// replica claim a push that was never recorded.
func (w *ReplicaWrite) Commit(ctx context.Context, gen int64) error {
	defer w.tx.Rollback()
	if err := w.Allows(gen); err != nil {
		return err
	}
	res, err := w.tx.ExecContext(ctx, `UPDATE replication_jobs SET
		repo_generation = CASE WHEN repo_generation > ?1 THEN repo_generation ELSE ?1 END
		WHERE repo_id = ?2 AND server_id = ?3`, gen, w.repoID, w.self)
	if err != nil {
		return fmt.Errorf("commit replica write: %w", err)
	}
	// The job row can go while the write runs (node remove): then this
	// node holds nothing the election counts, and the primary must not
	// say the push is replicated here.
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("commit replica write: this node no longer holds a replica of repository %d: %w", w.repoID, ErrNotFound)
	}
	if err := w.tx.Commit(); err != nil {
		return fmt.Errorf("commit replica write: %w", err)
	}
	return nil
}

// Allows reports whether the write may record generation gen: between 0
// and the repository's generation when the write began.
func (w *ReplicaWrite) Allows(gen int64) error {
	if gen < 0 || gen > w.generation {
		return fmt.Errorf("generation %d: the repository is at %d", gen, w.generation)
	}
	return nil
}

// Rollback abandons the write; after Commit it does nothing.
func (w *ReplicaWrite) Rollback() error { return w.tx.Rollback() }

// SyncTarget is a replica node a primary may write a push into before
// acknowledging it.
type SyncTarget struct {
	Node Server
	// Generation is what the node's copy was last known to hold (-1:
	// nothing yet).
	Generation int64
	// Live: the node's lease holds by the database's clock.
	Live bool
}

// SyncTargets lists the replica nodes of repository repoID that may take
// a synchronous write: not a former primary whose writes are still to be
// saved. Live ones first, the most current first. One statement: the
// acknowledgement waits for it.
func (s *Store) SyncTargets(ctx context.Context, repoID int64) ([]SyncTarget, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT x.*, j.repo_generation, coalesce(`+leaseLive(s.db.d, "x")+`, false) AS live
		FROM (`+serverSelect+`) x JOIN replication_jobs j ON j.server_id = x.id
		WHERE j.repo_id = ? AND x.role = 'node' AND x.enabled = 1 AND j.diverge_epoch = 0
		ORDER BY live DESC, j.repo_generation DESC, x.name`, repoID)
	if err != nil {
		return nil, fmt.Errorf("replicas of repository %d: %w", repoID, err)
	}
	defer rows.Close()
	var out []SyncTarget
	for rows.Next() {
		var t SyncTarget
		t.Node, err = scanServer(withColumns{rows, []any{&t.Generation, &t.Live}})
		if err != nil {
			return nil, fmt.Errorf("replicas of repository %d: %w", repoID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replicas of repository %d: %w", repoID, err)
	}
	return out, nil
}

// withColumns scans a row of scanServer's columns followed by more.
type withColumns struct {
	sc   scanner
	more []any
}

func (w withColumns) Scan(dest ...any) error { return w.sc.Scan(append(dest, w.more...)...) }
