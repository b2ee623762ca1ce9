package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// replicated is a three-node cluster with acme/web on n1 (primary, its
// lease held) and replicas on n2 and n3, pushed to three times.
func replicated(t *testing.T) (*Store, []Server, Repo) {
	t.Helper()
	ctx := context.Background()
	s, nodes := cluster(t, 3)
	s.CreateOrg(ctx, admin, "acme", "")
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web", Placing: Placing{Node: "n1", Replicas: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLease(ctx, nodes[0].ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.MarkDirtyAs(ctx, "acme", "web", Writer{Node: nodes[0].ID}); err != nil {
			t.Fatal(err)
		}
	}
	return s, nodes, r
}

func replicaGeneration(t *testing.T, s *Store, repoID, node int64) int64 {
	t.Helper()
	j, err := s.JobFor(context.Background(), repoID, node)
	if err != nil {
		t.Fatal(err)
	}
	return j.RepoGeneration
}

// A committed replica write records the generation it brought, never
// lowering what the replica held; a generation the repository never
// reached is refused and nothing is recorded.
func TestReplicaWriteCommits(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	n1, n2 := nodes[0].ID, nodes[1].ID
	for _, c := range []struct{ gen, want int64 }{{2, 2}, {1, 2}, {3, 3}} {
		w, err := s.BeginReplicaWrite(ctx, r.ID, n1, n2, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, c.gen); err != nil {
			t.Fatal(err)
		}
		if got := replicaGeneration(t, s, r.ID, n2); got != c.want {
			t.Fatalf("after generation %d: replica holds %d, want %d", c.gen, got, c.want)
		}
	}
	for _, bad := range []int64{4, -2} {
		w, err := s.BeginReplicaWrite(ctx, r.ID, n1, n2, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, bad); err == nil {
			t.Errorf("generation %d committed", bad)
		}
	}
	if got := replicaGeneration(t, s, r.ID, n2); got != 3 {
		t.Fatalf("after bad generations: %d", got)
	}
	// A rolled-back write records nothing.
	if _, err := s.MarkDirtyAs(ctx, "acme", "web", Writer{Node: n1}); err != nil {
		t.Fatal(err)
	}
	w, err := s.BeginReplicaWrite(ctx, r.ID, n1, n2, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Rollback()
	if got := replicaGeneration(t, s, r.ID, n2); got != 3 {
		t.Fatalf("after a rollback: %d", got)
	}
}

// Only the primary under its epoch, with its lease, writes into a node
// that holds a replica whose former-primary writes are saved.
func TestReplicaWriteRefusals(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	n1, n2, n3 := nodes[0].ID, nodes[1].ID, nodes[2].ID
	other, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "solo", Placing: Placing{Node: "n1", Replicas: 0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name               string
		repo, from, to, ep int64
		want               error
	}{
		{"a replica as sender", r.ID, n3, n2, 0, ErrNotPrimary},
		{"a stale epoch", r.ID, n1, n2, 1, ErrNotPrimary},
		{"the primary itself as receiver", r.ID, n1, n1, 0, ErrNotFound},
		{"a node without a replica", other.ID, n1, n2, 0, ErrNotFound},
		{"no such repository", r.ID + 100, n1, n2, 0, ErrNotFound},
	}
	for _, c := range cases {
		if _, err := s.BeginReplicaWrite(ctx, c.repo, c.from, c.to, c.ep); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET diverge_epoch = 1 WHERE repo_id = ? AND server_id = ?`, r.ID, n3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginReplicaWrite(ctx, r.ID, n1, n3, 0); !errors.Is(err, ErrHeldDiverged) {
		t.Errorf("a former primary's copy: %v", err)
	}
	targets, err := s.SyncTargets(ctx, r.ID)
	if err != nil || len(targets) != 1 || targets[0].Node.Name != "n2" {
		t.Errorf("sync targets without the diverged copy: %+v %v", targets, err)
	}
	if err := s.RenewLease(ctx, n1, -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginReplicaWrite(ctx, r.ID, n1, n2, 0); !errors.Is(err, ErrFenced) {
		t.Errorf("a primary whose lease ran out: %v", err)
	}
	if got := replicaGeneration(t, s, r.ID, n2); got != -1 {
		t.Errorf("refused writes recorded generation %d", got)
	}
}

// An open replica write holds the repository's row: a change of it (the
// next push's generation, an election) waits until the write ends.
func TestReplicaWriteHoldsTheRepository(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	w, err := s.BeginReplicaWrite(ctx, r.ID, nodes[0].ID, nodes[1].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.MarkDirtyAs(ctx, "acme", "web", Writer{Node: nodes[0].ID}); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the repository changed during a replica write: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := w.Commit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change still waits after the replica write ended")
	}
	if g, _ := s.RepoGeneration(ctx, r.ID); g != 4 {
		t.Errorf("generation %d after the waiting push", g)
	}
}

// A replica write whose job row went meanwhile records nothing and says
// so: the primary must not report the push replicated there.
func TestReplicaWriteCommitWithoutJob(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	w, err := s.BeginReplicaWrite(ctx, r.ID, nodes[0].ID, nodes[1].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM replication_jobs WHERE repo_id = ? AND server_id = ?`, r.ID, nodes[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 3); err == nil {
		t.Fatal("a write into a replica whose job is gone committed")
	}
}

// node remove waits for a replica write into the node and then counts
// the generation it committed: the node, now ahead of the other
// replica, holds that push alone and stays.
func TestRemoveNodeWaitsForReplicaWrite(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	w, err := s.BeginReplicaWrite(ctx, r.ID, nodes[0].ID, nodes[1].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	removed := make(chan error, 1)
	go func() { removed <- s.RemoveNode(ctx, admin, "n2") }()
	select {
	case err := <-removed:
		w.Rollback()
		t.Fatalf("node remove did not wait for the replica write: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := w.Commit(ctx, 3); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := <-removed; err == nil || !strings.Contains(err.Error(), "only replica copy") {
		t.Fatalf("remove n2 after it took generation 3 alone: %v", err)
	}
}
