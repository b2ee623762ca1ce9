package store

import (
	"context"
	"fmt"
	"strings"
)

// DrainPlan is what node drain asked for: the handovers it requested and
// the repositories that have no live replica to go to (they stay on the
// draining node until one exists).
type DrainPlan struct {
	Moves []Move
	Stuck []string
}

// SetDraining marks the node named name draining (placement puts no new
// primary or replica there) and asks each repository it is primary of to
// move to its most current live replica that is not draining, fewest
// primaries first, then by name. A move already asked for stays.
func (s *Store) SetDraining(ctx context.Context, a Actor, name string) (DrainPlan, error) {
	if s.db.d != postgres {
		return DrainPlan{}, ErrNeedsPostgres
	}
	var plan DrainPlan
	err := s.change(ctx, a, "node.drain", name, nil, keepsMeta, func(tx *Tx) error {
		n, err := s.readNode(ctx, tx, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET draining = 1 WHERE id = ?`, n.id); err != nil {
			return fmt.Errorf("drain %s: %w", name, err)
		}
		plan, err = s.planDrain(ctx, tx, n.id)
		return err
	})
	return plan, err
}

// planDrain chooses a target for each repository node id is primary of.
func (s *Store) planDrain(ctx context.Context, tx *Tx, id int64) (DrainPlan, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT r.id, o.name || '/' || r.name, coalesce(t.id, 0), coalesce(t.name, '')
		FROM repos r JOIN orgs o ON o.id = r.org_id
		LEFT JOIN servers t ON t.id = coalesce(
			(SELECT m.id FROM servers m WHERE m.id = r.move_to AND m.draining = 0),
			(SELECT n.id FROM replication_jobs j JOIN servers n ON n.id = j.server_id
			 WHERE j.repo_id = r.id AND n.role = 'node' AND n.draining = 0 AND n.id <> ?1 AND `+leaseLive(s.db.d, "n")+`
			 ORDER BY j.repo_generation DESC, (SELECT count(*) FROM repos x WHERE x.primary_id = n.id), n.name LIMIT 1))
		WHERE r.primary_id = ?1 ORDER BY r.id FOR UPDATE OF r`, id)
	if err != nil {
		return DrainPlan{}, fmt.Errorf("plan drain: %w", err)
	}
	defer rows.Close()
	var plan DrainPlan
	for rows.Next() {
		m := Move{Cause: CauseDrain}
		if err := rows.Scan(&m.RepoID, &m.Repo, &m.To.ID, &m.To.Name); err != nil {
			return DrainPlan{}, fmt.Errorf("plan drain: %w", err)
		}
		if m.To.ID == 0 {
			plan.Stuck = append(plan.Stuck, m.Repo)
			continue
		}
		plan.Moves = append(plan.Moves, m)
	}
	if err := rows.Err(); err != nil {
		return DrainPlan{}, fmt.Errorf("plan drain: %w", err)
	}
	rows.Close()
	for _, m := range plan.Moves {
		if _, err := tx.ExecContext(ctx, `UPDATE repos SET move_to = ? WHERE id = ?`, m.To.ID, m.RepoID); err != nil {
			return DrainPlan{}, fmt.Errorf("plan drain: %w", err)
		}
	}
	return plan, nil
}

// moveOffDraining asks a repository that a draining node just created
// (a push that creates, on the node) to move to its first replica: no
// new primary stays on a draining node.
func moveOffDraining(ctx context.Context, tx *Tx, repoID int64, draining bool, replicas []int64) error {
	if !draining || len(replicas) == 0 {
		return nil
	}
	return setMoveTo(ctx, tx, repoID, replicas[0])
}

// RemoveNode deletes the node named name from the cluster, with its
// replica rows: only when it holds nothing alone. It must be primary of
// nothing (drain it first), hold no writes of an old primacy not yet
// saved (diverge_epoch), and for every repository some other replica
// must hold at least the generation it holds (the election's bar).
func (s *Store) RemoveNode(ctx context.Context, a Actor, name string) error {
	if s.db.d != postgres {
		return ErrNeedsPostgres
	}
	return s.change(ctx, a, "node.remove", name, nil, altersMeta, func(tx *Tx) error {
		n, err := s.readNode(ctx, tx, name)
		if err != nil {
			return err
		}
		// Locked first: an election or handover onto the node cannot
		// commit between the count of its primaries and its removal.
		if err := lockHeldRepos(ctx, tx, n.id); err != nil {
			return fmt.Errorf("remove node %s: %w", name, err)
		}
		var primaries int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM repos WHERE primary_id = ?`, n.id).Scan(&primaries); err != nil {
			return fmt.Errorf("remove node %s: %w", name, err)
		}
		if primaries > 0 {
			return fmt.Errorf("remove node %s: it is the primary of %d repositories; drain it first (cpm-admin node drain %s)", n.name, primaries, n.name)
		}
		alone, err := s.heldAlone(ctx, tx, n.id)
		if err != nil {
			return err
		}
		if len(alone) > 0 {
			return fmt.Errorf("remove node %s: it holds the only replica copy of pushes to %s; wait until another replica has synced", n.name, strings.Join(alone, ", "))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM servers WHERE id = ?`, n.id); err != nil {
			return fmt.Errorf("remove node %s: %w", name, err)
		}
		return nil
	})
}

// lockHeldRepos locks the rows of the repositories node id is primary
// or holds a replica of: a replica write into the node (which holds its
// row shared) finishes first, and the generation it committed is the one
// heldAlone reads; no new one begins, and no election or handover makes
// it a primary, until the node is gone.
func lockHeldRepos(ctx context.Context, tx *Tx, id int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT r.id FROM repos r
		WHERE r.primary_id = ?1 OR r.id IN (SELECT repo_id FROM replication_jobs WHERE server_id = ?1) ORDER BY r.id FOR UPDATE OF r`, id)
	if err != nil {
		return fmt.Errorf("lock the repositories of node %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// heldAlone lists the repositories of which node id holds something no
// other replica has: writes from an old primacy not yet saved, or a
// generation above every other replica's. The primary's copy does not
// count, live or not: election's bar is the replicas' highest
// generation, and without this node's row it would drop below a push
// acknowledged because this node held it, the day the primary dies.
func (s *Store) heldAlone(ctx context.Context, tx *Tx, id int64) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT o.name || '/' || r.name FROM replication_jobs j
		JOIN repos r ON r.id = j.repo_id JOIN orgs o ON o.id = r.org_id
		WHERE j.server_id = ?1 AND (j.diverge_epoch <> 0 OR (j.repo_generation > 0
			AND j.repo_generation > coalesce((SELECT max(x.repo_generation) FROM replication_jobs x JOIN servers xs ON xs.id = x.server_id
			                                  WHERE x.repo_id = j.repo_id AND x.server_id <> j.server_id AND xs.role = 'node'), -1)))
		ORDER BY 1`, id)
	if err != nil {
		return nil, fmt.Errorf("what node %d holds alone: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("what node %d holds alone: %w", id, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
