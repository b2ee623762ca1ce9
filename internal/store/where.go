package store

import (
	"context"
	"fmt"
)

// Where is a repository's place in the cluster: `repo where`.
type Where struct {
	Repo       string
	Primary    string // "" outside a cluster
	Generation int64
	Epoch      int64
	Replicas   []Replica
	// MoveTo is the node a planned handover moves it to ("" for none).
	MoveTo string
	// Diverged are refs kept from a returning old primary.
	Diverged []DivergedRef
}

// Replica is one node's copy of a repository.
type Replica struct {
	Node string
	// Generation is the repository generation the last verified sync
	// brought to the node.
	Generation int64
	// Job is the node's queue row (state, lag: Job.Lag).
	Job Job
}

// RepoWhere says where ORG/REPO lives: its primary, its generation and
// each replica node's. ErrNotFound: no such repository.
func (s *Store) RepoWhere(ctx context.Context, org, repo string) (Where, error) {
	p, err := s.Placement(ctx, "", org, repo)
	if err != nil {
		return Where{}, err
	}
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return Where{}, err
	}
	w := Where{Repo: r.FullName(), Primary: p.Primary.Name, Generation: p.Generation, Epoch: p.Epoch}
	rows, err := s.db.QueryContext(ctx, jobSelect+`
		WHERE j.repo_id = ? AND s.role = 'node' ORDER BY s.name`, r.ID)
	if err != nil {
		return Where{}, fmt.Errorf("replicas of %s: %w", r.FullName(), err)
	}
	defer rows.Close()
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return Where{}, fmt.Errorf("replicas of %s: %w", r.FullName(), err)
		}
		rp := Replica{Node: j.Server, Generation: j.RepoGeneration, Job: j}
		w.Replicas = append(w.Replicas, rp)
	}
	if err := rows.Err(); err != nil {
		return Where{}, fmt.Errorf("replicas of %s: %w", r.FullName(), err)
	}
	rows.Close()
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce((SELECT t.name FROM repos x JOIN servers t ON t.id = x.move_to WHERE x.id = ?), '')`,
		r.ID).Scan(&w.MoveTo); err != nil {
		return Where{}, fmt.Errorf("move of %s: %w", r.FullName(), err)
	}
	w.Diverged, err = s.Diverged(ctx, r.ID)
	return w, err
}
