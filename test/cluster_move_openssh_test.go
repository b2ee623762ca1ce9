package test

import (
	"encoding/json"
	"os/exec"
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
	nodes := testworld.NewOpenSSHCluster(t, bin.OnDatabase(pg.Database), 3)
	n1 := nodes[0]
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme", "--owner", "alice")
	n1.MustAdmin("repo", "create", "acme/web") // primary node-1
	testworld.RefreshKeys(nodes)

	loop := testworld.NewPushLoop(nodes[1].SSHD.Client(alice), []string{"acme/web"}, 2)
	loop.Start()
	defer loop.Stop()
	waitAcked(t, loop, 3)
	if out := n1.MustAdmin("repo", "move", "acme/web", "--to", "node-3"); !strings.Contains(out, "moved acme/web to node-3") {
		t.Errorf("repo move: %s", out)
	}
	if w := whereOn(t, n1.World, "acme/web"); w.Primary != "node-3" {
		t.Errorf("after the move: %+v", w)
	}
	waitAcked(t, loop, ackedPushes(loop)+3)
	if out := n1.MustAdmin("node", "drain", "node-3"); !strings.Contains(out, "moved acme/web -> node-") {
		t.Errorf("node drain: %s", out)
	}
	waitAcked(t, loop, ackedPushes(loop)+3)
	loop.Stop()
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
