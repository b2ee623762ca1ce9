package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// movesWorld is three live nodes and acme/web with primary n1 and a
// replica on n2 (n3 holds none), two pushes in, n2 synced to both.
func movesWorld(t *testing.T) (*Store, []Server, Repo) {
	t.Helper()
	ctx := context.Background()
	s, nodes := cluster(t, 3)
	for _, n := range nodes {
		if err := s.RenewLease(ctx, n.ID, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	s.CreateOrg(ctx, admin, "acme", "")
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web", Placing: Placing{Node: "n1", Replicas: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	syncTo(t, s, r, nodes[0], 2)
	return s, nodes, r
}

// syncTo makes pushes to r on its primary until it is at generation gen
// and records a verified sync of every replica.
func syncTo(t *testing.T, s *Store, r Repo, primary Server, gen int64) {
	t.Helper()
	ctx := context.Background()
	for g, _ := s.RepoGeneration(ctx, r.ID); g < gen; g++ {
		if err := s.MarkDirty(ctx, r.Org, r.Name); err != nil {
			t.Fatal(err)
		}
	}
	for {
		j, ok, err := s.Claim(ctx, "w", primary.ID, time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if err := s.Done(ctx, j, j.Generation, gen, "fp", 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRepoMoveHandOver(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	for name, to := range map[string]string{"no such node": "n9", "its primary": "n1"} {
		if err := s.RequestMove(ctx, admin, "acme", "web", to); err == nil {
			t.Errorf("move to %s: accepted", name)
		}
	}
	if err := s.RequestMove(ctx, admin, "acme", "web", "n1"); !errors.Is(err, ErrAlreadyThere) {
		t.Fatalf("move to its primary: %v", err)
	}
	// n3 holds no replica: the move gives it one, which the primary must
	// bring up to date before it may hand over.
	if err := s.RequestMove(ctx, admin, "acme", "web", "n3"); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.RepoWhere(ctx, "acme", "web"); w.MoveTo != "n3" || len(w.Replicas) != 2 {
		t.Fatalf("after the request: %+v", w)
	}
	moves, err := s.PendingMoves(ctx, nodes[0].ID)
	if err != nil || len(moves) != 1 || moves[0].To.Name != "n3" || moves[0].Cause != CauseMove || moves[0].Repo != "acme/web" {
		t.Fatalf("pending moves of n1: %+v %v", moves, err)
	}
	if other, _ := s.PendingMoves(ctx, nodes[2].ID); len(other) != 0 {
		t.Fatalf("pending moves of n3: %+v", other)
	}
	if _, err := s.HandOver(ctx, admin, moves[0], nodes[0].ID); !errors.Is(err, ErrBehind) {
		t.Fatalf("hand over to a replica that never synced: %v", err)
	}
	if _, err := s.HandOver(ctx, admin, moves[0], nodes[1].ID); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("hand over by a node that is not the primary: %v", err)
	}
	syncTo(t, s, r, nodes[0], 3)
	e, err := s.HandOver(ctx, admin, moves[0], nodes[0].ID)
	if err != nil || e.From != "n1" || e.To != "n3" || e.Epoch != 1 || e.Generation != 3 || e.Cause != CauseMove {
		t.Fatalf("hand over: %+v %v", e, err)
	}
	w, _ := s.RepoWhere(ctx, "acme", "web")
	gens := map[string]int64{}
	for _, rp := range w.Replicas {
		gens[rp.Node] = rp.Generation
	}
	if w.Primary != "n3" || w.Epoch != 1 || w.MoveTo != "" || len(gens) != 2 || gens["n1"] != 3 || gens["n2"] != 3 {
		t.Fatalf("after the handover: %+v %v", w, gens)
	}
	if _, err := s.HandOver(ctx, admin, moves[0], nodes[0].ID); err == nil {
		t.Fatal("a second handover of the same move")
	}
	// n1 is queued to have any write it took past the gate kept as
	// diverged under the new epoch before it is synced.
	if j, err := s.JobFor(ctx, r.ID, nodes[0].ID); err != nil || j.DivergeEpoch != 1 || j.State != "pending" {
		t.Fatalf("the old primary's job after the handover: %+v %v", j, err)
	}
	if a, _ := s.Audit(ctx, 1); a[0].Action != "repo.move" || a[0].Details["from"] != "n1" || a[0].Details["to"] != "n3" {
		t.Fatalf("audit: %+v", a[0])
	}
}

func TestDrainAndRemoveNode(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	if err := s.RemoveNode(ctx, admin, "n1"); err == nil || !strings.Contains(err.Error(), "drain it first") {
		t.Fatalf("remove the primary: %v", err)
	}
	plan, err := s.SetDraining(ctx, admin, "n1")
	if err != nil || len(plan.Moves) != 1 || plan.Moves[0].To.Name != "n2" || len(plan.Stuck) != 0 {
		t.Fatalf("drain n1: %+v %v", plan, err)
	}
	moves, _ := s.PendingMoves(ctx, nodes[0].ID)
	if len(moves) != 1 || moves[0].Cause != CauseDrain {
		t.Fatalf("pending after drain: %+v", moves)
	}
	if all, _ := s.Nodes(ctx); !all[0].Draining {
		t.Fatalf("n1 not draining: %+v", all[0])
	}
	if e, err := s.HandOver(ctx, admin, moves[0], nodes[0].ID); err != nil || e.Cause != CauseDrain || e.To != "n2" {
		t.Fatalf("hand over: %+v %v", e, err)
	}
	// What the draining n1 creates (a push that creates) moves off it.
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "late", Placing: Placing{Node: "n1", Replicas: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.RepoWhere(ctx, "acme", "late"); w.Primary != "n1" || w.MoveTo == "" || w.MoveTo == "n1" {
		t.Fatalf("a repository created on a draining node: %+v", w)
	}
	if err := s.RemoveNode(ctx, admin, "n1"); err == nil {
		t.Fatal("removed n1 while it is primary of acme/late")
	}
	late, _ := s.PendingMoves(ctx, nodes[0].ID)
	syncTo(t, s, Repo{ID: late[0].RepoID, Org: "acme", Name: "late"}, nodes[0], 1)
	if _, err := s.HandOver(ctx, admin, late[0], nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	// n2 is primary now and n1 its only replica: n2 may not go, nor may
	// n1 until another replica holds what it holds (election counts the
	// replicas only); then n1 holds nothing alone and may go.
	if err := s.RemoveNode(ctx, admin, "n2"); err == nil {
		t.Fatal("removed the new primary")
	}
	if err := s.RemoveNode(ctx, admin, "n1"); err == nil || !strings.Contains(err.Error(), "only replica copy") {
		t.Fatalf("remove the only replica: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation)
		SELECT repo_id, ?, 1, 'done', '', '', repo_generation FROM replication_jobs WHERE server_id = ?`, nodes[2].ID, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	// n1 is queued for its writes since the handovers to be kept: until
	// the new primary looked (here: nothing new), it may not go.
	if err := s.RemoveNode(ctx, admin, "n1"); err == nil {
		t.Fatal("removed n1 before its writes since the handover were looked for")
	}
	for _, id := range []int64{r.ID, late[0].RepoID} {
		j, err := s.JobFor(ctx, id, nodes[0].ID)
		if err != nil || j.DivergeEpoch == 0 {
			t.Fatalf("n1's job of %d: %+v %v", id, j, err)
		}
		if err := s.RecordDiverged(ctx, admin, j, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveNode(ctx, admin, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NodeByName(ctx, "n1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("n1 after remove: %v", err)
	}
}

func TestRemoveNodeHoldingAlone(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	// The primary n1 dies (its lease and heartbeat long gone) while n2
	// holds generation 2 and n3, a new replica, nothing: n2 holds it alone.
	if _, err := s.db.ExecContext(ctx, `UPDATE servers SET lease_until = '', heartbeat_at = '' WHERE id = ?`, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation)
		VALUES (?, ?, 1, 'pending', '', '', -1)`, r.ID, nodes[2].ID); err != nil {
		t.Fatal(err)
	}
	err := s.RemoveNode(ctx, admin, "n2")
	if err == nil || !strings.Contains(err.Error(), "only replica copy") || !strings.Contains(err.Error(), "acme/web") {
		t.Fatalf("remove n2: %v", err)
	}
	if w, err := s.WaitingForPrimary(ctx, 1); err != nil || len(w) != 0 {
		t.Fatalf("waiting while n2 lives: %+v %v", w, err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE servers SET lease_until = '', heartbeat_at = '' WHERE id = ?`, nodes[1].ID); err != nil {
		t.Fatal(err)
	}
	if w, err := s.WaitingForPrimary(ctx, 1); err != nil || len(w) != 1 || w[0].Repo != "acme/web" || w[0].Primary != "n1" ||
		!strings.Contains(w[0].Why, "generation 2 (n2: down)") {
		t.Fatalf("waiting with n2 down too: %+v %v", w, err)
	}
	if err := s.RemoveNode(ctx, admin, "n3"); err != nil {
		t.Fatalf("remove n3, which holds nothing: %v", err)
	}
}

// A replica ahead of every other replica holds its pushes alone even
// while the primary lives: without its row, election's bar would drop
// below them the day the primary dies.
func TestRemoveNodeAheadOfOtherReplicas(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation)
		VALUES (?, ?, 1, 'pending', '', '', 1)`, r.ID, nodes[2].ID); err != nil {
		t.Fatal(err)
	}
	err := s.RemoveNode(ctx, admin, "n2")
	if err == nil || !strings.Contains(err.Error(), "only replica copy") || !strings.Contains(err.Error(), "acme/web") {
		t.Fatalf("remove n2 (generation 2, n3 at 1, the primary live): %v", err)
	}
	if err := s.RemoveNode(ctx, admin, "n3"); err != nil {
		t.Fatalf("remove n3, behind n2: %v", err)
	}
}

func TestRecordDiverged(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := movesWorld(t)
	// n1 was primary until epoch 4: its job says so.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation, diverge_epoch)
		VALUES (?, ?, 1, 'pending', '', '', -1, 4)`, r.ID, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	j, err := s.JobFor(ctx, r.ID, nodes[0].ID)
	if err != nil || j.DivergeEpoch != 4 {
		t.Fatalf("job: %+v %v", j, err)
	}
	refs := []DivergedRef{{Ref: "refs/heads/main", Object: strings.Repeat("a", 40)}, {Ref: "refs/tags/v1", Object: strings.Repeat("b", 40)}}
	if err := s.RecordDiverged(ctx, admin, j, refs); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.JobFor(ctx, r.ID, nodes[0].ID); j.DivergeEpoch != 0 {
		t.Fatalf("diverge_epoch not cleared: %+v", j)
	}
	w, err := s.RepoWhere(ctx, "acme", "web")
	if err != nil || len(w.Diverged) != 2 || w.Diverged[0].Node != "n1" || w.Diverged[0].Epoch != 4 ||
		w.Diverged[0].SavedAs() != "refs/cpm/diverged/4/refs/heads/main" {
		t.Fatalf("where: %+v %v", w.Diverged, err)
	}
	all, err := s.Diverged(ctx, 0)
	if err != nil || len(all) != 2 || all[1].Repo != "acme/web" {
		t.Fatalf("all diverged: %+v %v", all, err)
	}
}
