package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// spec is a node joining on 127.0.0.N:2222 with its own replication key.
func spec(name string, n int) NodeSpec {
	return NodeSpec{
		Name: name, Host: fmt.Sprintf("127.0.0.%d", n), Port: 2222,
		PeerKey: "ssh-ed25519 AAAApeer" + name, PeerFingerprint: "SHA256:peer" + name,
		HostKeyPEM: "PEM of " + name, HostKey: "ssh-ed25519 AAAAhost" + name,
	}
}

// cluster joins n nodes (n1, n2, …) to a fresh PostgreSQL store.
func cluster(t *testing.T, n int) (*Store, []Server) {
	t.Helper()
	s := newPostgresStore(t)
	var nodes []Server
	for i := 1; i <= n; i++ {
		srv, _, err := s.JoinCluster(context.Background(), admin, spec(fmt.Sprintf("n%d", i), i+1))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, srv)
	}
	return s, nodes
}

func TestJoinClusterNeedsPostgres(t *testing.T) {
	s := newStore(t)
	if _, _, err := s.JoinCluster(context.Background(), admin, spec("n1", 2)); !errors.Is(err, ErrNeedsPostgres) {
		t.Fatalf("join on SQLite: %v", err)
	}
	if _, err := s.PlaceRepos(context.Background(), admin, Placing{Node: "n1", Replicas: 2}); !errors.Is(err, ErrNeedsPostgres) {
		t.Fatalf("place on SQLite: %v", err)
	}
}

func TestJoinCluster(t *testing.T) {
	ctx := context.Background()
	s := newPostgresStore(t)
	n1, pem1, err := s.JoinCluster(ctx, admin, spec("n1", 2))
	if err != nil {
		t.Fatal(err)
	}
	if pem1 != "PEM of n1" || n1.Role != Node || !n1.Approved || !n1.Enabled || n1.HostKey != "ssh-ed25519 AAAAhostn1" || n1.Port != 2222 {
		t.Fatalf("first node: %+v %q", n1, pem1)
	}
	// The second node gets the first one's host key, not its own.
	n2, pem2, err := s.JoinCluster(ctx, admin, spec("n2", 3))
	if err != nil || pem2 != pem1 || n2.HostKey != n1.HostKey {
		t.Fatalf("second node: %+v %q %v", n2, pem2, err)
	}
	if got, _ := s.ClusterHostKey(ctx); got != pem1 {
		t.Fatalf("cluster host key %q", got)
	}
	// Again with a new address: the same row, moved.
	again := spec("n1", 9)
	if n, _, err := s.JoinCluster(ctx, admin, again); err != nil || n.ID != n1.ID || n.Host != "127.0.0.9" {
		t.Fatalf("rejoin: %+v %v", n, err)
	}
	if _, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "h", Port: 22, Path: "/r", Role: Backup}); err != nil {
		t.Fatal(err)
	}
	clash := spec("N1", 5)
	clash.PeerFingerprint = "SHA256:other"
	taken := spec("n4", 3) // n2's address
	cloned := spec("n5", 7)
	cloned.PeerKey, cloned.PeerFingerprint = spec("n2", 0).PeerKey, spec("n2", 0).PeerFingerprint // a copy of n2's data dir
	for name, sp := range map[string]NodeSpec{"another key": clash, "a backup's name": spec("b1", 6), "an address in use": taken, "n2's replication key": cloned} {
		if _, _, err := s.JoinCluster(ctx, admin, sp); !errors.Is(err, ErrExists) {
			t.Errorf("%s: %v", name, err)
		}
	}
	nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Name != "n2" {
		t.Fatalf("nodes: %+v %v", nodes, err)
	}
	if isNode, _ := s.IsNodeName(ctx, "N2"); !isNode {
		t.Error("IsNodeName N2")
	}
	if isNode, _ := s.IsNodeName(ctx, "b1"); isNode {
		t.Error("IsNodeName b1")
	}
}

func TestNodeStateAndLease(t *testing.T) {
	ctx := context.Background()
	s, nodes := cluster(t, 1)
	for _, c := range []struct {
		n    ClusterNode
		want string
	}{
		{ClusterNode{Live: true}, NodeUp},
		{ClusterNode{}, NodeDown},
		{ClusterNode{Live: true, Server: Server{Draining: true}}, NodeDraining},
	} {
		if got := c.n.State(); got != c.want {
			t.Errorf("%+v: %s, want %s", c.n, got, c.want)
		}
	}
	state := func() string {
		got, err := s.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got[0].State()
	}
	if got := state(); got != NodeDown {
		t.Errorf("never renewed: %s", got)
	}
	if err := s.RenewLease(ctx, nodes[0].ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != NodeUp {
		t.Errorf("renewed: %s", got)
	}
	if held, err := s.LeaseHeld(ctx, nodes[0].ID); !held || err != nil {
		t.Errorf("LeaseHeld after a renewal: %v %v", held, err)
	}
	got, _ := s.Nodes(ctx)
	if got[0].HeartbeatAt.IsZero() || !got[0].LeaseUntil.After(got[0].HeartbeatAt) {
		t.Errorf("heartbeat %v, lease until %v", got[0].HeartbeatAt, got[0].LeaseUntil)
	}
	if err := s.RenewLease(ctx, nodes[0].ID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := state(); got != NodeDown {
		t.Errorf("lease ran out: %s", got)
	}
	if held, err := s.LeaseHeld(ctx, nodes[0].ID); held || err != nil {
		t.Errorf("LeaseHeld after it ran out: %v %v", held, err)
	}
	if _, err := s.LeaseHeld(ctx, nodes[0].ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("LeaseHeld of no node: %v", err)
	}
	if err := s.RenewLease(ctx, nodes[0].ID+100, time.Second); !errors.Is(err, ErrNotFound) {
		t.Errorf("lease of no node: %v", err)
	}
}

func TestPeerByFingerprintFindsNodes(t *testing.T) {
	s, nodes := cluster(t, 2)
	got, err := s.PeerByFingerprint(context.Background(), "SHA256:peern2")
	if err != nil || got.ID != nodes[1].ID || got.Role != Node {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestChooseReplicas(t *testing.T) {
	nodes := func() []candidate {
		return []candidate{
			{id: 1, name: "a", up: true, replicas: 3},
			{id: 2, name: "b", up: true, replicas: 1},
			{id: 3, name: "c", up: false, replicas: 0},
			{id: 4, name: "d", up: true, replicas: 1},
			{id: 5, name: "e", up: true, draining: true},
		}
	}
	for _, c := range []struct {
		name    string
		primary int64
		have    map[int64]bool
		want    int
		got     []int64
	}{
		{"fewest first, ties by name", 1, nil, 2, []int64{2, 4}},
		{"down nodes last", 1, nil, 3, []int64{2, 4, 3}},
		{"capped at the other nodes, never draining", 1, nil, 9, []int64{2, 4, 3}},
		{"counts what it has", 2, map[int64]bool{4: true}, 2, []int64{1}},
		{"has enough", 2, map[int64]bool{4: true, 1: true}, 2, nil},
		{"none wanted", 1, nil, 0, nil},
	} {
		if got := chooseReplicas(nodes(), c.primary, c.have, c.want); !reflect.DeepEqual(got, c.got) {
			t.Errorf("%s: %v, want %v", c.name, got, c.got)
		}
	}
	// Choices count: placing three repositories in a row spreads them.
	ns := []candidate{{id: 1, name: "a", up: true}, {id: 2, name: "b", up: true}, {id: 3, name: "c", up: true}}
	var got []int64
	for range 3 {
		got = append(got, chooseReplicas(ns, 1, nil, 1)...)
	}
	if !reflect.DeepEqual(got, []int64{2, 3, 2}) {
		t.Errorf("spread: %v", got)
	}
}

// replicaNodes names the nodes holding a replica of ORG/REPO.
func replicaNodes(t *testing.T, s *Store, org, repo string) (string, []string) {
	t.Helper()
	w, err := s.RepoWhere(context.Background(), org, repo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range w.Replicas {
		out = append(out, r.Node)
	}
	return w.Primary, out
}

func TestCreateRepoPlaces(t *testing.T) {
	ctx := context.Background()
	s, _ := cluster(t, 3)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		node     string
		replicas int
		want     []string
	}{
		{"n1", 2, []string{"n2", "n3"}},
		{"n2", 1, []string{"n1"}}, // n1 holds no replica yet, n3 one
		{"n3", 5, []string{"n1", "n2"}},
	} {
		name := fmt.Sprintf("r%d", i)
		if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: name, Placing: Placing{Node: c.node, Replicas: c.replicas}}, nil); err != nil {
			t.Fatal(err)
		}
		primary, got := replicaNodes(t, s, "acme", name)
		if primary != c.node {
			t.Errorf("%s: primary %s, want %s", name, primary, c.node)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: replicas %v, want %v", name, got, c.want)
		}
	}
	// A new replica holds nothing yet, not even generation 0.
	if p, err := s.Placement(ctx, "n2", "acme", "r0"); err != nil || p.Current() || p.Local != -1 || p.Generation != 0 {
		t.Errorf("a new replica: %+v %v", p, err)
	}
	if p, err := s.Placement(ctx, "n1", "acme", "r0"); err != nil || !p.Current() || p.Primary.Name != "n1" {
		t.Errorf("the primary: %+v %v", p, err)
	}
	// A store told to place as a node places what it creates.
	s.PlaceAs(Placing{Node: "n3", Replicas: 1})
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "by-n3"}, nil); err != nil {
		t.Fatal(err)
	}
	if primary, got := replicaNodes(t, s, "acme", "by-n3"); primary != "n3" || len(got) != 1 {
		t.Errorf("by-n3: %s %v", primary, got)
	}
	s.PlaceAs(Placing{})
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "x", Placing: Placing{Node: "n9", Replicas: 2}}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("create on no node: %v", err)
	}
	if _, err := s.Repo(ctx, "acme", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a repository placed on no node was kept: %v", err)
	}
	nodes, _ := s.Nodes(ctx)
	want := map[string][2]int{"n1": {1, 3}, "n2": {1, 2}, "n3": {2, 1}}
	for _, n := range nodes {
		if [2]int{n.Primaries, n.Replicas} != want[n.Name] {
			t.Errorf("%s: %d primaries, %d replicas", n.Name, n.Primaries, n.Replicas)
		}
	}
}

func TestPlaceRepos(t *testing.T) {
	ctx := context.Background()
	s := newPostgresStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	// Before the cluster: a single-node installation's repositories.
	for _, n := range []string{"a", "b"} {
		if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := Placing{Node: "n1", Replicas: 2}
	if _, _, err := s.JoinCluster(ctx, admin, spec("n1", 2)); err != nil {
		t.Fatal(err)
	}
	if added, err := s.PlaceRepos(ctx, admin, p); err != nil || added != 0 {
		t.Fatalf("first node: %d %v", added, err)
	}
	if primary, got := replicaNodes(t, s, "acme", "a"); primary != "n1" || got != nil {
		t.Fatalf("after the first node: %s %v", primary, got)
	}
	// The second node takes a replica of each; the third too; again: none.
	for i, want := range []int{2, 2, 0} {
		name := fmt.Sprintf("n%d", min(i+2, 3))
		if _, _, err := s.JoinCluster(ctx, admin, spec(name, i+3)); err != nil && i < 2 {
			t.Fatal(err)
		}
		if added, err := s.PlaceRepos(ctx, admin, Placing{Node: name, Replicas: 2}); err != nil || added != want {
			t.Fatalf("join %s: added %d, want %d (%v)", name, added, want, err)
		}
	}
	if primary, got := replicaNodes(t, s, "acme", "b"); primary != "n1" || !reflect.DeepEqual(got, []string{"n2", "n3"}) {
		t.Fatalf("b: %s %v", primary, got)
	}
}

func TestMarkDirtyBumpsGeneration(t *testing.T) { onBoth(t, testMarkDirtyBumpsGeneration) }

func testMarkDirtyBumpsGeneration(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	s.CreateOrg(ctx, admin, "acme", "")
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := s.RepoGeneration(ctx, r.ID); err != nil || g != 3 {
		t.Fatalf("generation %d %v", g, err)
	}
	p, err := s.Placement(ctx, "", "acme", "web")
	if err != nil || p.Clustered() || p.Generation != 3 || !p.Current() {
		t.Fatalf("placement outside a cluster: %+v %v", p, err)
	}
	if _, err := s.RepoGeneration(ctx, r.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("generation of nothing: %v", err)
	}
}

// A push marks the repository's replica nodes, never the other nodes, and
// only the primary claims the jobs; Done records the generation it
// brought, which Placement and RepoWhere show.
func TestClusterQueue(t *testing.T) {
	ctx := context.Background()
	s, nodes := cluster(t, 3)
	s.CreateOrg(ctx, admin, "acme", "")
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web", Placing: Placing{Node: "n1", Replicas: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "h", Port: 22, Path: "/r", Role: Backup})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := s.Jobs(ctx)
	var targets []string
	for _, j := range jobs {
		targets = append(targets, j.Server)
	}
	if !reflect.DeepEqual(targets, []string{"b1", "n2"}) {
		t.Fatalf("jobs to %v, want b1 and the one replica n2", targets)
	}
	for _, self := range []int64{0, nodes[1].ID, nodes[2].ID} {
		if j, ok, err := s.Claim(ctx, "w", self, time.Minute, nil); ok || err != nil {
			t.Fatalf("claimed by %d, not the primary: %+v %v", self, j, err)
		}
	}
	j, ok, err := s.Claim(ctx, "w", nodes[0].ID, time.Minute, nil)
	if err != nil || !ok || j.Server != "n2" {
		t.Fatalf("the primary claims its replica first: %+v %v %v", j, ok, err)
	}
	if p, _ := s.Placement(ctx, "n2", "acme", "web"); p.Current() || p.Local != -1 || p.Generation != 2 {
		t.Fatalf("n2 before the sync: %+v", p)
	}
	gen, _ := s.RepoGeneration(ctx, r.ID)
	if err := s.MarkDirty(ctx, "acme", "web"); err != nil { // a push during the sync
		t.Fatal(err)
	}
	if err := s.Done(ctx, j, j.Generation, gen, "fp", 1); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Placement(ctx, "n2", "acme", "web")
	if p.Local != 2 || p.Generation != 3 || p.Current() || p.Primary.Name != "n1" {
		t.Fatalf("n2 after the sync: %+v", p)
	}
	for _, c := range []struct {
		node int
		want bool
	}{{0, true}, {1, true}, {2, false}} {
		held, err := s.HeldBy(ctx, nodes[c.node].ID)
		if err != nil || held[r.ID] != c.want {
			t.Errorf("HeldBy(n%d): %v %v", c.node+1, held, err)
		}
	}
	w, err := s.RepoWhere(ctx, "ACME", "WEB")
	if err != nil || w.Repo != "acme/web" || w.Primary != "n1" || w.Generation != 3 || len(w.Replicas) != 1 ||
		w.Replicas[0].Node != "n2" || w.Replicas[0].Generation != 2 || w.Replicas[0].Job.Done() {
		t.Fatalf("where: %+v %v", w, err)
	}
	if j, ok, err := s.Claim(ctx, "w", nodes[0].ID, time.Minute, []int64{b1.ID}); err != nil || !ok || j.Server != "b1" {
		t.Fatalf("the primary claims the backup's job: %+v %v %v", j, ok, err)
	}
	// A job of a repository without a primary is anyone's.
	s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "old"}, nil)
	if err := s.MarkDirty(ctx, "acme", "old"); err != nil {
		t.Fatal(err)
	}
	if j, ok, err := s.Claim(ctx, "w", nodes[2].ID, time.Minute, nil); err != nil || !ok || j.Repo != "acme/old" {
		t.Fatalf("unplaced: %+v %v %v", j, ok, err)
	}
}

func TestSetNodeKey(t *testing.T) {
	ctx := context.Background()
	s, _ := cluster(t, 1)
	if err := s.SetNodeKey(ctx, admin, "n1", "ssh-ed25519 AAAAnew", "SHA256:new"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PeerByFingerprint(ctx, "SHA256:new"); err != nil || got.Name != "n1" || got.PeerKey != "ssh-ed25519 AAAAnew" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := s.PeerByFingerprint(ctx, "SHA256:peern1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the old key still speaks for n1: %v", err)
	}
	if err := s.SetNodeKey(ctx, admin, "b9", "k", "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("no such node: %v", err)
	}
}
