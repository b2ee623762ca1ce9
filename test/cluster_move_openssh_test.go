package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterMoveDrainOpenSSH: planned handovers on nodes run the
// OpenSSH way (sshd's forced commands for users and nodes, cpm-shell
// replicate, no cpm-shell serve anywhere). Clients push in a loop
// through node-2, which relays to the primary, while `repo move` hands
// acme/web from node-1 to node-3 and `node drain node-3` moves it on:
// no push fails, both commands complete, `repo where` names the new
// primary, and every copy ends with the same refs, fsck-clean.
func TestClusterMoveDrainOpenSSH(t *testing.T) {
	start := time.Now()
	phase := func(what string) { t.Logf("%s: %s", what, time.Since(start).Round(100*time.Millisecond)) }
	nodes := testworld.NewOpenSSHCluster(t, bin.OnDatabase(pg.Database), 3)
	phase("cluster up")
	n1 := nodes[0]
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme", "--owner", "alice")
	n1.MustAdmin("repo", "create", "acme/web") // primary node-1
	testworld.RefreshKeys(nodes)
	checkNodeKeysOnly(t, nodes[0], nodes[1], alice)

	loop := testworld.NewPushLoop(nodes[1].SSHD.Client(alice), []string{"acme/web"}, 2)
	loop.Start()
	defer loop.Stop()
	waitAcked(t, loop, 3)
	phase("first pushes")
	if out := n1.MustAdmin("repo", "move", "acme/web", "--to", "node-3"); !strings.Contains(out, "moved acme/web to node-3") {
		t.Errorf("repo move: %s", out)
	}
	if w := whereOn(t, n1.World, "acme/web"); w.Primary != "node-3" {
		t.Errorf("after the move: %+v", w)
	}
	phase("moved")
	waitAcked(t, loop, ackedPushes(loop)+2)
	phase("pushes after the move")
	if out := n1.MustAdmin("node", "drain", "node-3"); !strings.Contains(out, "moved acme/web -> node-") {
		t.Errorf("node drain: %s", out)
	}
	phase("drained")
	waitAcked(t, loop, ackedPushes(loop)+2)
	loop.Stop()
	phase("pushes after the drain")
	for _, p := range loop.Pushes() {
		if !p.OK {
			t.Errorf("a push failed (%s at %s): %s", p.Branch, p.Start.Format(time.RFC3339Nano), p.Stderr)
		}
	}
	w := whereOn(t, n1.World, "acme/web")
	if w.Primary == "node-3" || w.Primary == "" || w.Epoch == nil || *w.Epoch != 2 {
		t.Fatalf("after the drain: %+v", w)
	}
	checkSameCopies(t, nodes, "acme/web")
	phase("copies checked")
	for _, nd := range nodes {
		for _, l := range strings.Split(nd.Workers.Log(), "\n") {
			if strings.Contains(l, `"message":"handover"`) {
				t.Logf("%s: %s", nd.Name, l)
			}
		}
	}
}

func ackedPushes(l *testworld.PushLoop) int {
	n := 0
	for _, p := range l.Pushes() {
		if p.OK {
			n++
		}
	}
	return n
}

// waitAcked waits up to 60 s until the loop has n acknowledged pushes.
func waitAcked(t *testing.T, l *testworld.PushLoop, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, "acknowledged pushes", func() bool { return ackedPushes(l) >= n })
}

func whereOn(t *testing.T, w *testworld.World, repo string) whereRow {
	t.Helper()
	var row whereRow
	mustJSON(t, w.MustAdmin("repo", "where", repo, "--json"), &row)
	return row
}

// checkSameCopies waits until every replica of repo holds its
// generation, then checks that each copy `repo where` names is
// fsck-clean with the primary's refs.
func checkSameCopies(t *testing.T, nodes []*testworld.OpenSSHNode, repo string) {
	t.Helper()
	var w whereRow
	waitFor(t, 60*time.Second, repo+"'s replicas current", func() bool {
		w = whereOn(t, nodes[0].World, repo)
		for _, r := range w.Replicas {
			if r.Generation != w.Generation {
				return false
			}
		}
		return len(w.Replicas) == 2
	})
	org, name, _ := strings.Cut(repo, "/")
	refsOf := map[string]string{}
	for _, nd := range nodes {
		dir := nd.RepoDir(org, name)
		if out, err := gitOut(dir, "fsck", "--strict", "--no-progress"); err != nil {
			t.Errorf("git fsck of %s on %s: %v\n%s", repo, nd.Name, err, out)
		}
		refs, err := gitOut(dir, "show-ref", "--head")
		if err != nil {
			t.Errorf("%s on %s: %v %s", repo, nd.Name, err, refs)
		}
		refsOf[nd.Name] = refs
	}
	for _, nd := range nodes {
		if refsOf[nd.Name] != refsOf[w.Primary] {
			t.Errorf("%s: the refs on %s differ from the primary's (%s):\n%s\n---\n%s", repo, nd.Name, w.Primary, refsOf[nd.Name], refsOf[w.Primary])
		}
	}
	b, _ := json.Marshal(w)
	t.Logf("%s", b)
}

func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = testworld.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkNodeKeysOnly: sshd's lookup on n answers another node's
// replication key with cpm-shell's peer line, and the peer forced
// command serves only a node's key: a user's key named there is refused.
func checkNodeKeysOnly(t *testing.T, n, other *testworld.OpenSSHNode, user testworld.Key) {
	t.Helper()
	fp := fingerprintOf(t, readFile(t, filepath.Join(other.DataDir, "id_ed25519_replication.pub")))
	if out := n.MustAdmin("authorized-keys", "--fingerprint", fp); !strings.Contains(out, " peer-"+fp+" --data-dir ") {
		t.Errorf("authorized-keys for %s's replication key: %s", other.Name, out)
	}
	hello := func(fp string) testworld.Result {
		cmd := exec.Command(bin.Shell, "peer-"+fp, "--data-dir", n.DataDir)
		cmd.Env = append(testworld.Env(), "SSH_ORIGINAL_COMMAND=cpm-peer hello", "SSH_CONNECTION=127.0.0.3 50000 127.0.0.2 22")
		return n.Exec(cmd, "")
	}
	if r := hello(fp); r.Code != 0 || !strings.Contains(r.Stdout, "node-1") {
		t.Errorf("cpm-peer hello with %s's key: exit %d %q %q", other.Name, r.Code, r.Stdout, r.Stderr)
	}
	if r := hello(fingerprintOf(t, readFile(t, user.PubPath))); r.Code == 0 || r.Stderr != "cpm: key is no longer registered\n" {
		t.Errorf("cpm-peer hello with a user's key through the peer command: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
