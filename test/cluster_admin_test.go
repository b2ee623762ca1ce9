package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// nodeWorld is a data directory of its own, not yet initialised, for a
// node of a cluster on database ("" for SQLite).
func nodeWorld(t *testing.T, database string) *testworld.World {
	root := t.TempDir()
	return &testworld.World{T: t, Bin: bin, Root: root, DataDir: filepath.Join(root, "data"), Database: database}
}

type nodeRow struct {
	Name      string  `json:"name"`
	Address   string  `json:"address"`
	State     string  `json:"state"`
	Heartbeat *string `json:"heartbeat"`
	Primaries int     `json:"primaries"`
	Replicas  int     `json:"replicas"`
}

type whereRow struct {
	Repo       string `json:"repo"`
	Primary    string `json:"primary"`
	Generation int64  `json:"generation"`
	Epoch      *int64 `json:"epoch"`
	Replicas   []struct {
		Node       string   `json:"node"`
		Generation int64    `json:"generation"`
		LagSeconds *float64 `json:"lag_seconds"`
		State      string   `json:"state"`
	} `json:"replicas"`
}

func mustJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// Two data directories on one PostgreSQL database become two nodes of one
// cluster: one host key, node list and repo where as the database says,
// replicas placed for what existed before and what is created after, and
// server commands leave nodes alone. No server runs: this is init's and
// the admin commands' part.
func TestClusterInitAndAdmin(t *testing.T) {
	db := pg.Database(t)
	n1, n2 := nodeWorld(t, db), nodeWorld(t, db)
	// n1 was a single installation on the database before the cluster.
	n1.MustAdmin("init", "--database", db)
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("repo", "create", "acme/old")
	out := n1.MustAdmin("init", "--database", db, "--node-name", "n1", "--advertise", "127.0.0.2:2222")
	if !strings.Contains(out, "node n1 of the cluster") {
		t.Errorf("init n1: %s", out)
	}
	var w whereRow
	mustJSON(t, n1.MustAdmin("repo", "where", "acme/old", "--json"), &w)
	if w.Repo != "acme/old" || w.Primary != "n1" || len(w.Replicas) != 0 || w.Epoch == nil {
		t.Fatalf("before n2: %+v", w)
	}
	out = n2.MustAdmin("init", "--database", db, "--node-name", "n2", "--advertise", "127.0.0.3:2222")
	if !strings.Contains(out, "1 replicas placed") {
		t.Errorf("init n2: %s", out)
	}
	// One client-facing host key: the first node's, on both.
	for _, f := range []string{"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"} {
		a, _ := os.ReadFile(filepath.Join(n1.DataDir, f))
		b, _ := os.ReadFile(filepath.Join(n2.DataDir, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs between the nodes", f)
		}
	}
	if fi, err := os.Stat(filepath.Join(n2.DataDir, "ssh_host_ed25519_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(n2.DataDir, "node")); string(b) != "n2\n" {
		t.Errorf("DATA/node: %q", b)
	}
	// n2 creates: it is the primary, n1 the replica.
	n2.MustAdmin("repo", "create", "acme/new")
	mustJSON(t, n1.MustAdmin("repo", "where", "acme/new", "--json"), &w)
	if w.Primary != "n2" || len(w.Replicas) != 1 || w.Replicas[0].Node != "n1" || w.Replicas[0].LagSeconds == nil {
		t.Fatalf("acme/new: %+v", w)
	}
	mustJSON(t, n2.MustAdmin("repo", "where", "acme/old", "--json"), &w)
	if w.Primary != "n1" || len(w.Replicas) != 1 || w.Replicas[0].Node != "n2" || w.Replicas[0].Generation != -1 || w.Replicas[0].State != "pending" {
		t.Fatalf("acme/old after n2 joined: %+v", w)
	}
	// Syncs by hand run on the primary: n2's copy of acme/old may lag.
	for _, verb := range []string{"push", "verify", "pull"} {
		r := n2.Admin("", "sync", verb, "acme/old", "--to", "n1")
		if verb == "pull" {
			r = n2.Admin("", "sync", verb, "acme/old", "--from", "n1")
		}
		if r.Code == 0 || !strings.Contains(r.Stderr, "its primary is node n1") {
			t.Errorf("sync %s of n1's repository on n2: %d %s", verb, r.Code, r.Stderr)
		}
	}
	var nodes []nodeRow
	mustJSON(t, n2.MustAdmin("node", "list", "--json"), &nodes)
	// Neither serves: no lease was ever renewed, so both are down (the
	// join is their only heartbeat).
	want := []nodeRow{
		{Name: "n1", Address: "127.0.0.2:2222", State: "down", Primaries: 1, Replicas: 1},
		{Name: "n2", Address: "127.0.0.3:2222", State: "down", Primaries: 1, Replicas: 1},
	}
	for i := range nodes {
		if nodes[i].Heartbeat == nil {
			t.Errorf("%s: no heartbeat", nodes[i].Name)
		}
		nodes[i].Heartbeat = nil
	}
	if !reflect.DeepEqual(nodes, want) {
		t.Errorf("node list: %+v", nodes)
	}
	// The joining node pins the others under their own alias, with the
	// cluster key (n1 pins n2 when its workers see it, or init runs).
	pub, _ := os.ReadFile(filepath.Join(n1.DataDir, "ssh_host_ed25519_key.pub"))
	kh, _ := os.ReadFile(filepath.Join(n2.DataDir, "known_hosts"))
	if !strings.Contains(string(kh), "cpm-server.n1 "+strings.TrimSpace(string(pub))) {
		t.Errorf("n2's known_hosts: %s", kh)
	}
	// Each node's doctor expects on disk what it holds: its primaries and
	// the replicas synced there (none yet), not every repository.
	for _, n := range []*testworld.World{n1, n2} {
		var findings []struct {
			Check  string `json:"check"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		}
		mustJSON(t, n.Admin("", "doctor", "--json").Stdout, &findings)
		nodesChecked := false
		for _, f := range findings {
			if f.Check == "repositories on disk" && !f.OK {
				t.Errorf("doctor: %s", f.Detail)
			}
			nodesChecked = nodesChecked || f.Check == "cluster nodes"
		}
		if !nodesChecked {
			t.Error("doctor does not look at the cluster's nodes")
		}
	}

	// Servers are backups and neighbours: nodes are not among them.
	if out := n1.MustAdmin("server", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("server list shows nodes: %s", out)
	}
	for _, args := range [][]string{
		{"server", "remove", "n2"},
		{"server", "approve", "N2"},
		{"server", "set", "n2", "--bwlimit", "10"},
		{"server", "add", "n2", "--host", "127.0.0.3", "--role", "backup", "--path", "/srv", "--host-key", strings.TrimSpace(string(pub))},
	} {
		r := n1.Admin("", args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "is a node of this cluster") {
			t.Errorf("%v: exit %d: %s", args, r.Code, r.Stderr)
		}
	}
	// init again: nothing changes but the pins; another name is refused.
	n1.MustAdmin("init")
	kh, _ = os.ReadFile(filepath.Join(n1.DataDir, "known_hosts"))
	if !strings.Contains(string(kh), "cpm-server.n2 "+strings.TrimSpace(string(pub))) {
		t.Errorf("n1's known_hosts: %s", kh)
	}
	if b, _ := os.ReadFile(filepath.Join(n1.DataDir, "ssh_host_ed25519_key.pub")); string(b) != string(pub) {
		t.Error("init again changed the host key")
	}
	r := n1.Admin("", "init", "--node-name", "n9", "--advertise", "127.0.0.2:2222")
	if r.Code == 0 || !strings.Contains(r.Stderr, `is node "n1"`) {
		t.Errorf("renaming a node: exit %d: %s", r.Code, r.Stderr)
	}
	mustJSON(t, n1.MustAdmin("node", "list", "--json"), &nodes)
	if len(nodes) != 2 {
		t.Errorf("after init again: %+v", nodes)
	}
	// A node rotates its replication key: nothing to install on the other
	// nodes, and its row has the new key (init, which checks that the row
	// is this data directory's, still passes).
	if out := n1.MustAdmin("server", "rotate-key"); !strings.Contains(out, "rotation finished") {
		t.Errorf("rotate-key on a node: %s", out)
	}
	if r := n1.Admin("", "init"); r.Code != 0 {
		t.Errorf("init after a key rotation: %s", r.Stderr)
	}
}

// What init --node-name --advertise refuses, with one line and nothing
// recorded: SQLite, an address that is not HOST:PORT, a name or an
// address another node holds.
func TestClusterInitRefusals(t *testing.T) {
	db := pg.Database(t)
	n1 := nodeWorld(t, db)
	n1.MustAdmin("init", "--database", db, "--node-name", "n1", "--advertise", "127.0.0.2:2222")
	for _, c := range []struct {
		name     string
		database string
		args     []string
		want     string
	}{
		{"SQLite", "", []string{"--node-name", "n3", "--advertise", "127.0.0.4:2222"}, "needs PostgreSQL"},
		{"no port", db, []string{"--node-name", "n3", "--advertise", "127.0.0.4"}, "want [USER@]HOST:PORT"},
		{"port 0", db, []string{"--node-name", "n3", "--advertise", "127.0.0.4:0"}, "invalid port 0"},
		{"an option for a host", db, []string{"--node-name", "n3", "--advertise=-oProxyCommand=x:22"}, "invalid host"},
		{"no name", db, []string{"--advertise", "127.0.0.4:2222"}, "--node-name"},
		{"a bad name", db, []string{"--node-name", "../n3", "--advertise", "127.0.0.4:2222"}, "node name"},
		{"another node's name", db, []string{"--node-name", "N1", "--advertise", "127.0.0.4:2222"}, "another data directory"},
		{"another node's address", db, []string{"--node-name", "n3", "--advertise", "127.0.0.2:2222"}, "already advertises"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := nodeWorld(t, c.database)
			args := []string{"init"}
			if c.database != "" {
				args = append(args, "--database", c.database)
			}
			r := w.Admin("", append(args, c.args...)...)
			if r.Code == 0 || !strings.HasPrefix(r.Stderr, "cpm: ") || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("exit %d: %q, want one line with %q", r.Code, r.Stderr, c.want)
			}
			if _, err := os.Stat(filepath.Join(w.DataDir, "node")); err == nil {
				t.Error("DATA/node written")
			}
		})
	}
	var nodes []nodeRow
	mustJSON(t, n1.MustAdmin("node", "list", "--json"), &nodes)
	if len(nodes) != 1 {
		t.Errorf("refused inits left nodes: %+v", nodes)
	}
}

// Outside a cluster node list is empty and repo where names no primary;
// init --node-name alone still names the installation for neighbours.
func TestClusterCommandsOutsideACluster(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("init", "--node-name", "solo")
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	if out := w.MustAdmin("node", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("node list: %s", out)
	}
	if out := w.MustAdmin("node", "list"); !strings.Contains(out, "not a cluster") {
		t.Errorf("node list: %s", out)
	}
	var wh whereRow
	mustJSON(t, w.MustAdmin("repo", "where", "acme/web", "--json"), &wh)
	if wh.Repo != "acme/web" || wh.Primary != "" || wh.Replicas == nil || len(wh.Replicas) != 0 {
		t.Errorf("repo where: %+v", wh)
	}
	if r := w.Admin("", "repo", "where", "acme/none"); r.Code == 0 || !strings.HasPrefix(r.Stderr, "cpm: ") {
		t.Errorf("repo where of nothing: %d %s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(w.DataDir, "node")); err == nil {
		t.Error("DATA/node written outside a cluster")
	}
}
