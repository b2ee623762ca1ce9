package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// listedNode is one line of `cpm-admin node list --json`.
type listedNode struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	State     string `json:"state"`
	Heartbeat string `json:"heartbeat"`
	Primaries int    `json:"primaries"`
	Replicas  int    `json:"replicas"`
}

// repoWhere is `cpm-admin repo where ORG/REPO --json`.
type repoWhere struct {
	Repo       string `json:"repo"`
	Primary    string `json:"primary"`
	Generation int64  `json:"generation"`
	Replicas   []struct {
		Node       string `json:"node"`
		Generation int64  `json:"generation"`
	} `json:"replicas"`
}

func nodeList(t *testing.T, c *testworld.Cluster, i int) []listedNode {
	t.Helper()
	var rows []listedNode
	out := c.MustAdmin(i, "node", "list", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("node list --json: %v\n%s", err, out)
	}
	return rows
}

func whereIs(t *testing.T, c *testworld.Cluster, i int, repo string) repoWhere {
	t.Helper()
	var w repoWhere
	out := c.MustAdmin(i, "repo", "where", repo, "--json")
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("repo where %s --json: %v\n%s", repo, err, out)
	}
	return w
}

// converged reports whether every replica of repo holds its generation.
func (w repoWhere) converged() bool {
	for _, r := range w.Replicas {
		if r.Generation != w.Generation {
			return false
		}
	}
	return true
}

// holders are the nodes repo where names: the primary, then the replicas.
func (w repoWhere) holders() []string {
	names := []string{w.Primary}
	for _, r := range w.Replicas {
		names = append(names, r.Node)
	}
	return names
}

// hostKeyAt is the ed25519 host key the ssh server at addr presents.
func hostKeyAt(t *testing.T, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("ssh-keyscan", "-T", "10", "-p", port, "-t", "ed25519", host).Output()
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return f[1] + " " + f[2]
	}
	t.Errorf("ssh-keyscan %s: %v %q", addr, err, out)
	return ""
}

// headOf is the commit main names in the clone of repo that client makes.
func headOf(t *testing.T, client *testworld.Client, repo string) string {
	t.Helper()
	dir, r := client.Clone(repo)
	if r.Code != 0 {
		t.Errorf("clone %s: %s", client.URL(repo), r.Stderr)
		return ""
	}
	defer os.RemoveAll(dir)
	return client.MustGit(dir, "rev-parse", "HEAD")
}

// TestClusterIsOneService is issue 22's acceptance test: three nodes on
// one PostgreSQL behind HAProxy (the shipped configuration) answer every
// user alike, forward pushes to the primary, serve every read current,
// present one host key, and converge.
func TestClusterIsOneService(t *testing.T) {
	c := testworld.NewCluster(t, bin.OnDatabase(pg.Database), 3)
	checkOneHostKey(t, c)

	// A user added on node 1.
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	c.MustAdmin(1, "repo", "create", "acme/web")
	clients := []*testworld.Client{c.Balancer().Client(alice)}
	for i := 1; i <= 3; i++ {
		clients = append(clients, c.Client(i, alice))
	}
	work := t.TempDir()
	clients[0].MustGit("", "init", "-q", "-b", "main", work)

	pushThroughEveryDoor(t, c, clients, work)
	checkRemovedKeyRefused(t, c, work)

	// Repositories created on node 2 and 3 (push-to-create): their primary
	// is the node that created them.
	repos := []string{"acme/web", "acme/api", "acme/lib"}
	for i, repo := range repos[1:] {
		client := clients[i+2]
		if r := client.Git(work, "push", "-q", client.URL(repo), "HEAD:main"); r.Code != 0 {
			t.Fatalf("push-to-create %s through node %d: %s", repo, i+2, r.Stderr)
		}
		if w := whereIs(t, c, 1, repo); w.Primary != fmt.Sprintf("node-%d", i+2) {
			t.Errorf("%s created through node %d has primary %q", repo, i+2, w.Primary)
		}
	}

	// 50 pushes spread over the nodes and the repositories.
	heads := map[string]string{}
	for k := 0; k < 50; k++ {
		client, repo := clients[1+k%3], repos[(k/3)%3]
		heads[repo] = client.Commit(work, fmt.Sprintf("push %d", k))
		if r := client.Git(work, "push", "-q", client.URL(repo), "HEAD:main"); r.Code != 0 {
			t.Fatalf("push %d to %s through %s: %s", k, repo, client.URL(repo), r.Stderr)
		}
	}
	waitConverged(t, c, repos)
	checkPlacement(t, c, repos, heads)
}

// checkOneHostKey: every node and the balancer present the cluster's one
// host key (the clients' known_hosts, one line, accepts nothing else).
func checkOneHostKey(t *testing.T, c *testworld.Cluster) {
	t.Helper()
	keys := map[string][]string{}
	for _, addr := range []string{c.Node(1).Addr, c.Node(2).Addr, c.Node(3).Addr, c.Balancer().Addr} {
		k := hostKeyAt(t, addr)
		keys[k] = append(keys[k], addr)
	}
	if len(keys) != 1 {
		t.Errorf("the nodes present %d host keys: %v", len(keys), keys)
	}
}

// pushThroughEveryDoor pushes acme/web through the balancer and through
// each node (clients[0] and clients[i]); a clone from each node right
// after sees each push, and the balancer passed each client's address on.
func pushThroughEveryDoor(t *testing.T, c *testworld.Cluster, clients []*testworld.Client, work string) {
	t.Helper()
	names := []string{"the balancer", "node 1", "node 2", "node 3"}
	for i, client := range clients {
		head := client.Commit(work, "push through "+names[i])
		if r := client.Git(work, "push", "-q", client.URL("acme/web"), "HEAD:main"); r.Code != 0 {
			t.Fatalf("push through %s: %s", names[i], r.Stderr)
		}
		for j := 1; j <= 3; j++ {
			if got := headOf(t, clients[j], "acme/web"); got != head {
				t.Errorf("clone from node %d right after the push through %s: main at %s, want %s", j, names[i], got, head)
			}
		}
	}
	// PROXY v2: no push is recorded as coming from the balancer.
	if audit := c.MustAdmin(2, "audit", "--json", "--limit", "10"); strings.Contains(audit, testworld.BalancerSource+":") {
		t.Errorf("a push is audited from the balancer's address, not the client's:\n%s", audit)
	}
}

// checkRemovedKeyRefused: a key removed on node 3 is refused by node 1
// (and every node, and through the balancer) at once.
func checkRemovedKeyRefused(t *testing.T, c *testworld.Cluster, work string) {
	t.Helper()
	second := c.Node(1).NewKey("alice-laptop")
	c.MustAdmin(1, "key", "add", "alice", second.PubPath)
	laptop := c.Client(1, second)
	if r := laptop.Git("", "ls-remote", laptop.URL("acme/web")); r.Code != 0 {
		t.Fatalf("the new key on node 1: %s", r.Stderr)
	}
	c.MustAdmin(3, "key", "remove", second.Fingerprint)
	for i := 1; i <= 3; i++ {
		if r := c.Client(i, second).SSH(nil, "whoami"); r.Code == 0 {
			t.Errorf("node %d still lets in a key removed on node 3: %q", i, r.Stdout)
		}
	}
	if r := c.Balancer().Client(second).Git(work, "push", "-q", c.Balancer().URL("acme/web"), "HEAD:refs/heads/removed"); r.Code == 0 {
		t.Error("a key removed on node 3 pushed through the balancer")
	}
}

// waitConverged polls `repo where` until every replica of repos holds its
// repository's generation, for at most 90 s.
func waitConverged(t *testing.T, c *testworld.Cluster, repos []string) {
	t.Helper()
	var lagging []string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		lagging = nil
		for _, repo := range repos {
			if !whereIs(t, c, 2, repo).converged() {
				lagging = append(lagging, c.MustAdmin(2, "repo", "where", repo))
			}
		}
		if lagging == nil {
			return
		}
	}
	t.Fatalf("replicas still behind after 90 s:\n%s", strings.Join(lagging, "\n"))
}

// checkPlacement: `repo where` and `node list` agree with the disk, every
// copy is fsck-clean with the same refs, at the last push.
func checkPlacement(t *testing.T, c *testworld.Cluster, repos []string, heads map[string]string) {
	t.Helper()
	primaries, replicas := map[string]int{}, map[string]int{}
	for _, repo := range repos {
		w := whereIs(t, c, 3, repo)
		if len(w.Replicas) != 2 {
			t.Errorf("%s has %d replicas, want 2 (the setting's default): %+v", repo, len(w.Replicas), w)
		}
		primaries[w.Primary]++
		held := map[string]bool{}
		var refs []string
		for _, name := range w.holders() {
			held[name] = true
			replicas[name]++
			refs = append(refs, copyRefs(t, c, name, repo, heads[repo]))
		}
		replicas[w.Primary]--
		for i := 1; i < len(refs); i++ {
			if refs[i] != refs[0] {
				t.Errorf("%s: the refs of %s differ from the primary's:\n%s\n---\n%s", repo, w.holders()[i], refs[i], refs[0])
			}
		}
		for _, nd := range c.Nodes {
			org, name, _ := strings.Cut(repo, "/")
			if _, err := os.Stat(nd.RepoDir(org, name)); err == nil && !held[nd.Name] {
				t.Errorf("%s holds %s, which repo where does not name there", nd.Name, repo)
			}
		}
	}
	rows := nodeList(t, c, 1)
	if len(rows) != len(c.Nodes) {
		t.Fatalf("node list shows %d nodes, want %d: %+v", len(rows), len(c.Nodes), rows)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	for i, r := range rows {
		nd := c.Nodes[i]
		if r.Name != nd.Name || r.Address != nd.Addr || r.State != "up" || r.Heartbeat == "" {
			t.Errorf("node list: %+v, want %s at %s, up, with a heartbeat", r, nd.Name, nd.Addr)
		}
		if r.Primaries != primaries[nd.Name] || r.Replicas != replicas[nd.Name] {
			t.Errorf("node list says %s is primary of %d and holds %d replicas; repo where says %d and %d",
				nd.Name, r.Primaries, r.Replicas, primaries[nd.Name], replicas[nd.Name])
		}
	}
}

// copyRefs checks node name's copy of repo (on disk, fsck-clean, main at
// head) and returns its refs.
func copyRefs(t *testing.T, c *testworld.Cluster, name, repo, head string) string {
	t.Helper()
	var nd *testworld.Node
	for _, n := range c.Nodes {
		if n.Name == name {
			nd = n
		}
	}
	if nd == nil {
		t.Errorf("repo where %s names an unknown node %q", repo, name)
		return ""
	}
	org, rname, _ := strings.Cut(repo, "/")
	dir := nd.RepoDir(org, rname)
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = testworld.Env()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := git("fsck", "--strict", "--no-progress"); err != nil {
		t.Errorf("git fsck of %s on %s: %v\n%s", repo, name, err, out)
	}
	if out, _ := git("rev-parse", "main"); strings.TrimSpace(out) != head {
		t.Errorf("%s on %s: main at %q, want %s", repo, name, strings.TrimSpace(out), head)
	}
	refs, err := git("show-ref", "--head")
	if err != nil {
		t.Errorf("%s on %s: %v %s", repo, name, err, refs)
	}
	return refs
}

// A data directory initialised without --node-name is no node: no
// DATA/node, and it serves as it always did, on SQLite and on PostgreSQL.
func TestSingleNodeIsNoCluster(t *testing.T) {
	for _, b := range []testworld.Bin{bin, bin.OnDatabase(pg.Database)} {
		w := testworld.New(t, b)
		if _, err := os.Stat(filepath.Join(w.DataDir, "node")); err == nil {
			t.Errorf("init (database %q) wrote DATA/node", w.Database)
		}
		alice := w.NewKey("alice")
		w.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
		w.MustAdmin("org", "create", "acme", "--owner", "alice")
		srv := w.StartServer()
		client := srv.Client(alice)
		dir := t.TempDir()
		client.MustGit("", "init", "-q", "-b", "main", dir)
		head := client.Commit(dir, "alone")
		client.MustGit(dir, "push", "-q", client.URL("acme/web"), "HEAD:main")
		if got := headOf(t, client, "acme/web"); got != head {
			t.Errorf("clone after push (database %q): %s, want %s", w.Database, got, head)
		}
		srv.Stop()
	}
}
