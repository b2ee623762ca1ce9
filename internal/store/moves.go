package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Planned handovers (repo move, node drain): the operator records where a
// repository's primary role should go (repos.move_to); the primary's own
// serving process brings that node up to date, stops its writes for a
// moment and hands over (HandOver), so that no push fails and none is
// lost. Nothing here copies data: the store only says who is what.

// HandoverGateWait bounds how long a primary performing a move holds the
// repository's writes back (the pushes under way, the last sync, the
// switch); one that runs out of it gives up, lets the writes go and
// tries again later.
const HandoverGateWait = 30 * time.Second

// Move is a handover a primary still has to perform.
type Move struct {
	RepoID int64
	Repo   string // ORG/REPO
	// To is the node that becomes the primary (ID and Name only).
	To Server
	// Cause is CauseDrain when the primary is draining, CauseMove
	// otherwise.
	Cause string
}

// ErrAlreadyThere means the repository's primary is the node a move
// names already: nothing to do.
var ErrAlreadyThere = errors.New("is already there")

// ErrBehind means the node a repository moves to does not hold its
// generation yet: the primary syncs it and tries again.
var ErrBehind = errors.New("the target does not hold the repository's generation yet")

// nodeFacts is a node as a move sees it.
type nodeFacts struct {
	id             int64
	name           string
	live, draining bool
}

func (s *Store) readNode(ctx context.Context, tx *Tx, name string) (nodeFacts, error) {
	var n nodeFacts
	err := tx.QueryRowContext(ctx, `SELECT n.id, n.name, `+leaseLive(s.db.d, "n")+`, n.draining = 1 FROM servers n
		WHERE n.name = ? AND n.role = 'node'`, name).Scan(&n.id, &n.name, &n.live, &n.draining)
	if errors.Is(err, sql.ErrNoRows) {
		return n, notFound("node", name)
	}
	if err != nil {
		return n, fmt.Errorf("read node %s: %w", name, err)
	}
	return n, nil
}

// lockPlaced locks a repository's row (PostgreSQL: FOR UPDATE, so an
// election or a push's generation bump waits) and returns its id,
// primary (0: none), generation and epoch.
func lockPlaced(ctx context.Context, tx *Tx, org, repo string) (id, primary, gen, epoch int64, err error) {
	var p sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT r.id, r.primary_id, r.generation, r.epoch FROM repos r JOIN orgs o ON o.id = r.org_id
		WHERE o.name = ? AND r.name = ? FOR UPDATE OF r`, org, repo).Scan(&id, &p, &gen, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, 0, notFound("repository", org+"/"+repo)
	}
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("lock %s/%s: %w", org, repo, err)
	}
	return id, p.Int64, gen, epoch, nil
}

// RequestMove asks ORG/REPO's primary to hand the repository over to the
// node named to (repo move): a live node that is not draining. A node
// without a replica gets one first (the primary syncs it before the
// handover). ErrAlreadyThere: to is its primary.
func (s *Store) RequestMove(ctx context.Context, a Actor, org, repo, to string) error {
	if s.db.d != postgres {
		return ErrNeedsPostgres
	}
	return s.change(ctx, a, "repo.move.request", org+"/"+repo, map[string]any{"to": to}, keepsMeta, func(tx *Tx) error {
		id, primary, _, _, err := lockPlaced(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		n, err := s.readNode(ctx, tx, to)
		switch {
		case err != nil:
			return err
		case primary == 0:
			return fmt.Errorf("move %s/%s: it has no primary node (not in a cluster)", org, repo)
		case primary == n.id:
			return fmt.Errorf("%s/%s: primary %s %w", org, repo, n.name, ErrAlreadyThere)
		case !n.live:
			return fmt.Errorf("move %s/%s: node %s is down", org, repo, n.name)
		case n.draining:
			return fmt.Errorf("move %s/%s: node %s is draining", org, repo, n.name)
		}
		return setMoveTo(ctx, tx, id, n.id)
	})
}

// setMoveTo records a planned handover of repository id to node to,
// giving to a replica first if it has none.
func setMoveTo(ctx context.Context, tx *Tx, id, to int64) error {
	if err := addReplicas(ctx, tx, id, []int64{to}); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE repos SET move_to = ? WHERE id = ?`, to, id); err != nil {
		return fmt.Errorf("record move: %w", err)
	}
	return nil
}

// PendingMoves lists the handovers node self (its server id) has to
// perform as the primary, by repository.
func (s *Store) PendingMoves(ctx context.Context, self int64) ([]Move, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.id, o.name || '/' || r.name, t.id, t.name, p.draining
		FROM repos r JOIN orgs o ON o.id = r.org_id JOIN servers t ON t.id = r.move_to JOIN servers p ON p.id = r.primary_id
		WHERE r.primary_id = ? ORDER BY r.id`, self)
	if err != nil {
		return nil, fmt.Errorf("pending moves: %w", err)
	}
	defer rows.Close()
	var out []Move
	for rows.Next() {
		m := Move{Cause: CauseMove}
		var draining bool
		if err := rows.Scan(&m.RepoID, &m.Repo, &m.To.ID, &m.To.Name, &draining); err != nil {
			return nil, fmt.Errorf("pending moves: %w", err)
		}
		if draining {
			m.Cause = CauseDrain
		}
		m.To.Role = Node
		out = append(out, m)
	}
	return out, rows.Err()
}

// HandOver makes m.To the primary of m's repository in one transaction,
// as node from (the primary) asks: only while from is its primary, the
// move is still asked for, and m.To's replica holds the repository's
// generation (ErrBehind otherwise). The epoch grows by one; from becomes
// a replica holding that generation, queued so that whatever it took
// since past the write gate is kept as diverged; m.To's replica row goes, and every other replica is queued for
// the new primary to check.
func (s *Store) HandOver(ctx context.Context, a Actor, m Move, from int64) (Election, error) {
	e := Election{RepoID: m.RepoID, Repo: m.Repo, To: m.To.Name, Cause: m.Cause}
	err := s.changeDetailed(ctx, a, "repo."+m.Cause, m.Repo, func(tx *Tx) (map[string]any, error) {
		var primary, moveTo sql.NullInt64
		var held int64
		var live bool
		err := tx.QueryRowContext(ctx, `SELECT r.primary_id, r.move_to, r.generation, r.epoch, coalesce(p.name, ''),
			coalesce((SELECT j.repo_generation FROM replication_jobs j WHERE j.repo_id = r.id AND j.server_id = ?2), -1),
			coalesce(`+leaseLive(s.db.d, "p")+`, false)
			FROM repos r LEFT JOIN servers p ON p.id = r.primary_id WHERE r.id = ?1 FOR UPDATE OF r`, m.RepoID, m.To.ID).
			Scan(&primary, &moveTo, &e.Generation, &e.Epoch, &e.From, &held, &live)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, notFound("repository", m.Repo)
		case err != nil:
			return nil, fmt.Errorf("hand %s over: %w", m.Repo, err)
		case primary.Int64 != from:
			return nil, fmt.Errorf("hand %s over: %w", m.Repo, ErrNotPrimary)
		case !live:
			return nil, fmt.Errorf("hand %s over: %w", m.Repo, ErrFenced)
		case moveTo.Int64 != m.To.ID:
			return nil, fmt.Errorf("hand %s over to %s: the move was withdrawn", m.Repo, m.To.Name)
		case held < e.Generation:
			return nil, fmt.Errorf("hand %s over to %s (generation %d of %d): %w", m.Repo, m.To.Name, held, e.Generation, ErrBehind)
		}
		e.Epoch++
		details := map[string]any{"from": e.From, "to": e.To, "epoch": e.Epoch, "generation": e.Generation, "cause": e.Cause}
		return details, swapPrimary(ctx, tx, m.RepoID, from, m.To.ID, e.Generation)
	})
	if err != nil {
		return Election{}, err
	}
	return e, nil
}

// swapPrimary makes to the primary of repository id in place of from,
// which keeps a replica at generation gen, its own writes since (if any)
// to be kept as diverged.
func swapPrimary(ctx context.Context, tx *Tx, id, from, to, gen int64) error {
	at := now()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE repos SET primary_id = ?, epoch = epoch + 1, move_to = NULL WHERE id = ?`, []any{to, id}},
		{`DELETE FROM replication_jobs WHERE repo_id = ? AND server_id = ?`, []any{id, to}},
		// The old primary keeps gen, and is queued with the new epoch
		// to diverge from: a write that reached it past the write gate
		// (a neighbour's forwarded push, another process's session)
		// after this handover is kept under refs/cpm/diverged before the
		// sync replaces its copy; when there is none, nothing is kept.
		{`INSERT INTO replication_jobs AS j (repo_id, server_id, generation, synced_generation, state, next_attempt_at,
			dirty_since, repo_generation, diverge_epoch) VALUES (?1, ?2, 1, 0, 'pending', ?3, ?3, ?4, (SELECT epoch FROM repos WHERE id = ?1))
			ON CONFLICT (repo_id, server_id) DO UPDATE SET repo_generation = ?4, diverge_epoch = excluded.diverge_epoch,
				generation = j.generation + 1, state = 'pending', next_attempt_at = ?3, lease_owner = '', lease_until = ''`, []any{id, from, at, gen}},
		{`UPDATE replication_jobs SET generation = generation + 1, next_attempt_at = ?,
			state = CASE WHEN state IN ('running', 'blocked') THEN state ELSE 'pending' END
			WHERE repo_id = ? AND server_id <> ?`, []any{at, id, from}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("change primary: %w", err)
		}
	}
	return nil
}

// changeDetailed is change for a change whose audit details are known
// only once fn ran (what it found under its locks).
func (s *Store) changeDetailed(ctx context.Context, a Actor, action, target string, fn func(tx *Tx) (map[string]any, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, target, err)
	}
	defer tx.Rollback()
	details, err := fn(tx)
	if err != nil {
		return err
	}
	if err := insertAudit(ctx, tx, a, action, target, details); err != nil {
		return fmt.Errorf("%s %s: audit: %w", action, target, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s %s: commit: %w", action, target, err)
	}
	return nil
}
