package store

import (
	"context"
	"fmt"
	"time"
)

// Diverged refs: when a primary that lost its role comes back, what it
// wrote that its successor lacks (pushes whose client was warned they
// were not yet replicated) is kept on the new primary under
// refs/cpm/diverged/EPOCH/<ref>, never dropped and never published on
// the old names. These rows are how doctor and repo where say so.

// DivergedRef is one ref saved from a returning old primary.
type DivergedRef struct {
	Repo    string    `json:"-"`
	Epoch   int64     `json:"epoch"` // the epoch that replaced the node
	Ref     string    `json:"ref"`   // the original name, refs/heads/main
	Object  string    `json:"object"`
	Node    string    `json:"node"` // the old primary it came from
	SavedAt time.Time `json:"-"`
}

// SavedAs is where the new primary keeps the ref.
func (d DivergedRef) SavedAs() string {
	return fmt.Sprintf("refs/cpm/diverged/%d/%s", d.Epoch, d.Ref)
}

// RecordDiverged records the refs saved from job j's node (an old
// primary, j.DivergeEpoch non-zero) and clears the job's diverge_epoch
// in the same transaction, so the next sync may replace the node's copy.
// An empty refs still clears it: the node held nothing new.
func (s *Store) RecordDiverged(ctx context.Context, a Actor, j Job, refs []DivergedRef) error {
	details := map[string]any{"node": j.Server, "epoch": j.DivergeEpoch, "refs": len(refs)}
	return s.change(ctx, a, "repo.diverged", j.Repo, details, keepsMeta, func(tx *Tx) error {
		at := now()
		for _, d := range refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO diverged_refs (repo_id, epoch, ref, object, node, saved_at)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, j.RepoID, j.DivergeEpoch, d.Ref, d.Object, j.Server, at); err != nil {
				return fmt.Errorf("record diverged ref %s of %s: %w", d.Ref, j.Repo, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE replication_jobs SET diverge_epoch = 0 WHERE repo_id = ? AND server_id = ? AND diverge_epoch = ?`,
			j.RepoID, j.ServerID, j.DivergeEpoch); err != nil {
			return fmt.Errorf("record diverged refs of %s: %w", j.Repo, err)
		}
		return keptChangesRepo(ctx, tx, j, len(refs))
	})
}

// keptChangesRepo: refs kept under refs/cpm/diverged/ are a change of the
// new primary's repository like a push, so its generation grows and every
// replica is queued again; else replicas already current would never get
// them, and they would live on the new primary alone.
func keptChangesRepo(ctx context.Context, tx *Tx, j Job, kept int) error {
	if kept == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE repos SET generation = generation + 1 WHERE id = ?`, j.RepoID); err != nil {
		return fmt.Errorf("queue the diverged refs of %s: %w", j.Repo, err)
	}
	if _, err := tx.ExecContext(ctx, markDirtySQL, j.RepoID, now()); err != nil {
		return fmt.Errorf("queue the diverged refs of %s: %w", j.Repo, err)
	}
	return nil
}

// Diverged lists the saved refs of one repository (repoID) or, with
// repoID 0, of every repository, by repository, epoch and ref.
func (s *Store) Diverged(ctx context.Context, repoID int64) ([]DivergedRef, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT o.name || '/' || r.name, d.epoch, d.ref, d.object, d.node, d.saved_at
		FROM diverged_refs d JOIN repos r ON r.id = d.repo_id JOIN orgs o ON o.id = r.org_id
		WHERE ?1 = 0 OR d.repo_id = ?1 ORDER BY o.name, r.name, d.epoch, d.ref`, repoID)
	if err != nil {
		return nil, fmt.Errorf("list diverged refs: %w", err)
	}
	defer rows.Close()
	var out []DivergedRef
	for rows.Next() {
		var d DivergedRef
		var at string
		if err := rows.Scan(&d.Repo, &d.Epoch, &d.Ref, &d.Object, &d.Node, &at); err != nil {
			return nil, fmt.Errorf("list diverged refs: %w", err)
		}
		d.SavedAt = parseTime(at)
		out = append(out, d)
	}
	return out, rows.Err()
}
