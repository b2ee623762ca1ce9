package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestElectWinner(t *testing.T) {
	r := func(id int64, gen int64, live, draining bool, primaries int) replicaNode {
		return replicaNode{id: id, name: string(rune('a' + id)), generation: gen, live: live, draining: draining, primaries: primaries}
	}
	for _, c := range []struct {
		name     string
		replicas []replicaNode
		sync     int
		want     int64 // 0: none
	}{
		{"the replica at the bar", []replicaNode{r(1, 3, true, false, 0), r(2, 5, true, false, 0)}, 1, 2},
		{"only a dead node holds the bar", []replicaNode{r(1, 3, true, false, 0), r(2, 5, false, false, 0)}, 1, 0},
		{"sync_replicas 0: the best live one", []replicaNode{r(1, 3, true, false, 0), r(2, 5, false, false, 0)}, 0, 1},
		{"never a replica that holds nothing", []replicaNode{r(1, -1, true, false, 0), r(2, -1, true, false, 0)}, 0, 0},
		{"no replica", nil, 1, 0},
		{"not draining first", []replicaNode{r(1, 5, true, true, 0), r(2, 5, true, false, 3)}, 1, 2},
		{"draining when no other", []replicaNode{r(1, 5, true, true, 0), r(2, 4, true, false, 0)}, 1, 1},
		{"fewest primaries", []replicaNode{r(1, 5, true, false, 2), r(2, 5, true, false, 1)}, 1, 2},
		{"then the name", []replicaNode{r(2, 5, true, false, 1), r(1, 5, true, false, 1)}, 1, 1},
	} {
		got, ok := electWinner(c.replicas, c.sync)
		if (c.want == 0 && ok) || (c.want != 0 && (!ok || got.id != c.want)) {
			t.Errorf("%s: %+v %v, want %d", c.name, got, ok, c.want)
		}
	}
}

// failoverWorld is three live nodes and acme/web, primary n1, replicas
// n2 and n3, at generation 5.
type failoverWorld struct {
	t     *testing.T
	s     *Store
	nodes []Server
	repo  Repo
}

func newFailoverWorld(t *testing.T) failoverWorld {
	t.Helper()
	ctx := context.Background()
	s, nodes := cluster(t, 3)
	w := failoverWorld{t: t, s: s, nodes: nodes}
	for i := range nodes {
		w.revive(i)
	}
	s.CreateOrg(ctx, admin, "acme", "")
	var err error
	w.repo, err = s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web", Placing: Placing{Node: "n1", Replicas: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w failoverWorld) exec(q string, args ...any) {
	w.t.Helper()
	if _, err := w.s.db.ExecContext(context.Background(), q, args...); err != nil {
		w.t.Fatal(err)
	}
}

// kill makes node i's (0-based) lease run out; revive renews it.
func (w failoverWorld) kill(i int) {
	w.exec(`UPDATE servers SET lease_until = '' WHERE id = ?`, w.nodes[i].ID)
}
func (w failoverWorld) revive(i int) {
	w.t.Helper()
	if err := w.s.RenewLease(context.Background(), w.nodes[i].ID, time.Minute); err != nil {
		w.t.Fatal(err)
	}
}

// holds records that node i's replica holds generation gen.
func (w failoverWorld) holds(i int, gen int64) {
	w.exec(`UPDATE replication_jobs SET repo_generation = ? WHERE repo_id = ? AND server_id = ?`, gen, w.repo.ID, w.nodes[i].ID)
}

func (w failoverWorld) elect(sync int) []Election {
	w.t.Helper()
	got, err := w.s.ElectPrimaries(context.Background(), admin, sync)
	if err != nil {
		w.t.Fatal(err)
	}
	return got
}

// The most current live replica takes over in one transaction: epoch
// bumped, its replica row gone, the old primary a replica that holds
// nothing and whose refs are saved first, the others synced anew,
// audited.
func TestElectPrimaries(t *testing.T) {
	ctx := context.Background()
	w := newFailoverWorld(t)
	w.holds(1, 3)
	w.holds(2, 5)
	if got := w.elect(1); len(got) != 0 {
		t.Fatalf("elected with a live primary: %+v", got)
	}
	w.exec(`UPDATE servers SET heartbeat_at = '2000-01-01T00:00:00.000Z' WHERE id = ?`, w.nodes[0].ID)
	w.kill(0)
	got := w.elect(1)
	if len(got) != 1 {
		t.Fatalf("elections: %+v", got)
	}
	e := got[0]
	if e.Repo != "acme/web" || e.From != "n1" || e.To != "n3" || e.Epoch != 1 || e.Generation != 5 || e.Cause != CauseLeaseExpired ||
		e.Without < time.Hour {
		t.Errorf("election %+v", e)
	}
	p, err := w.s.Placement(ctx, "n3", "acme", "web")
	if err != nil || p.Primary.Name != "n3" || p.Epoch != 1 || !p.Current() {
		t.Errorf("placement after: %+v %v", p, err)
	}
	where, _ := w.s.RepoWhere(ctx, "acme", "web")
	jobs := map[string]Job{}
	for _, r := range where.Replicas {
		jobs[r.Node] = r.Job
	}
	if _, ok := jobs["n3"]; ok || len(jobs) != 2 {
		t.Errorf("replicas after: %+v", where.Replicas)
	}
	if j := jobs["n1"]; j.RepoGeneration != -1 || j.DivergeEpoch != 1 || j.State != JobPending {
		t.Errorf("the old primary's row: %+v", j)
	}
	if j := jobs["n2"]; j.RepoGeneration != 3 || j.State != JobPending || j.DivergeEpoch != 0 {
		t.Errorf("n2's row: %+v", j)
	}
	if j, ok, _ := w.s.Claim(ctx, "w", w.nodes[2].ID, time.Minute, nil); !ok || (j.Server != "n1" && j.Server != "n2") {
		t.Errorf("the new primary claims its jobs: %+v %v", j, ok)
	}
	entries, err := w.s.Audit(ctx, 5)
	if err != nil || len(entries) == 0 || entries[0].Action != "repo.failover" || entries[0].Target != "acme/web" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
	if w.elect(1) != nil {
		t.Error("elected twice")
	}
}

// While only a dead node holds the newest acknowledged generation there
// is no election (with sync_replicas 0 the best live replica wins); a
// replica that holds nothing never wins; a repository without replicas
// never fails over.
func TestElectPrimariesWaits(t *testing.T) {
	w := newFailoverWorld(t)
	w.holds(1, 3)
	w.holds(2, 5)
	w.kill(0)
	w.kill(2)
	if got := w.elect(1); len(got) != 0 {
		t.Fatalf("elected below the bar: %+v", got)
	}
	waits, err := w.s.WaitingForPrimary(context.Background(), 1)
	if err != nil || len(waits) != 1 || waits[0] != (Waiting{Repo: "acme/web", Primary: "n1",
		Why: "waiting for a node that holds generation 5 (n3: down)"}) {
		t.Errorf("waiting: %+v %v", waits, err)
	}
	w.holds(1, -1)
	if got := w.elect(0); len(got) != 0 {
		t.Fatalf("elected a replica that holds nothing: %+v", got)
	}
	w.holds(1, 3)
	if got := w.elect(0); len(got) != 1 || got[0].To != "n2" {
		t.Fatalf("sync_replicas 0: %+v", got)
	}
	if waits, err := w.s.WaitingForPrimary(context.Background(), 1); err != nil || len(waits) != 0 {
		t.Errorf("waiting after the election: %+v %v", waits, err)
	}
	ctx := context.Background()
	w.revive(0)
	if _, err := w.s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "alone", Placing: Placing{Node: "n1", Replicas: 0}}, nil); err != nil {
		t.Fatal(err)
	}
	w.kill(0)
	w.revive(2)
	for _, e := range w.elect(0) {
		if e.Repo == "acme/alone" {
			t.Errorf("a repository without replicas failed over: %+v", e)
		}
	}
}

// Draining nodes are chosen only when no other qualifies, and two
// electors at once elect once.
func TestElectPrimariesConcurrently(t *testing.T) {
	w := newFailoverWorld(t)
	w.holds(1, 5)
	w.holds(2, 5)
	w.exec(`UPDATE servers SET draining = 1 WHERE id = ?`, w.nodes[2].ID)
	w.kill(0)
	var wg sync.WaitGroup
	results := make([][]Election, 4)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = w.elect(1) }()
	}
	wg.Wait()
	var all []Election
	for _, r := range results {
		all = append(all, r...)
	}
	if len(all) != 1 || all[0].To != "n2" || all[0].Epoch != 1 {
		t.Fatalf("elections: %+v", all)
	}
	p, _ := w.s.Placement(context.Background(), "", "acme", "web")
	if p.Epoch != 1 {
		t.Errorf("epoch %d", p.Epoch)
	}
}

func TestElectPrimariesOnSQLite(t *testing.T) {
	s := newStore(t)
	if got, err := s.ElectPrimaries(context.Background(), admin, 1); got != nil || err != nil {
		t.Errorf("%+v %v", got, err)
	}
}
