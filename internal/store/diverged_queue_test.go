package store

import (
	"context"
	"strings"
	"testing"
)

// Refs kept under refs/cpm/diverged/ change the new primary's repository:
// its generation grows and every replica is queued again, so that the
// kept refs reach the replicas that were already current. Nothing kept:
// nothing queued.
func TestRecordDivergedQueuesTheReplicas(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation, diverge_epoch)
		VALUES (?, ?, 1, 'pending', '', '', -1, 4)`, r.ID, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	j, err := s.JobFor(ctx, r.ID, nodes[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.RepoGeneration(ctx, r.ID)
	if err := s.RecordDiverged(ctx, admin, j, nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.RepoGeneration(ctx, r.ID); g != before {
		t.Errorf("nothing kept, yet the generation went from %d to %d", before, g)
	}

	if _, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET diverge_epoch = 5 WHERE repo_id = ? AND server_id = ?`, r.ID, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	j, _ = s.JobFor(ctx, r.ID, nodes[0].ID)
	refs := []DivergedRef{{Ref: "refs/heads/main", Object: strings.Repeat("a", 40)}}
	if err := s.RecordDiverged(ctx, admin, j, refs); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.RepoGeneration(ctx, r.ID); g != before+1 {
		t.Errorf("refs kept: generation %d, want %d", g, before+1)
	}
	var pending int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM replication_jobs WHERE repo_id = ? AND state = 'pending'`, r.ID).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	var all int
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM replication_jobs WHERE repo_id = ?`, r.ID).Scan(&all)
	if pending != all || all < 2 {
		t.Errorf("refs kept: %d of %d jobs pending, want all (at least 2)", pending, all)
	}
}
