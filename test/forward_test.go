package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestPushesToAReplicaGoToTheOrigin: with forwarding approved on A, a
// push to B's replica lands on A as the same user (A's checks, A's audit
// row "via" B) and is on B when the push returns; without it, the
// read-only refusal stays; a B that names a key A does not know gets
// nowhere.
func TestPushesToAReplicaGoToTheOrigin(t *testing.T) {
	n := newTwoNodes(t)
	n.approve(t)
	replica := n.b.RepoDir("acme", "web")
	origin := n.w.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "the replica on B", func() bool { return revParse(replica, "main") == revParse(origin, "main") })
	writer := n.clientsB["writer"]
	dir, r := writer.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone from B: %s", r.Stderr)
	}

	// Not approved for forwarding: the replica's refusal, with A's URL.
	writer.Commit(dir, "not forwarded")
	if r := writer.Git(dir, "push", "-q", "origin", "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, "read-only replica") {
		t.Fatalf("push to B without forwarding: %d %s", r.Code, r.Stderr)
	}

	n.w.MustAdmin("server", "approve", n.bName, "--forward-pushes")
	commit := writer.Commit(dir, "forwarded")
	start := time.Now()
	if r := writer.Git(dir, "push", "origin", "HEAD:main"); r.Code != 0 {
		t.Fatalf("forwarded push: %s", r.Stderr)
	}
	took := time.Since(start)
	if got := revParse(origin, "main"); got != commit {
		t.Fatalf("A's main after the forwarded push: %s, want %s", got, commit)
	}
	// B has it before the push command returned.
	if got := revParse(replica, "main"); got != commit {
		t.Errorf("B's replica right after the push: %s, want %s", got, commit)
	}
	audit := n.w.MustAdmin("audit", "--json", "--limit", "3")
	if !strings.Contains(audit, `"actor": "writer"`) || !strings.Contains(audit, `"via": "node-b"`) {
		t.Errorf("A's audit row of the forwarded push:\n%s", audit)
	}
	t.Logf("forwarded push took %s", took)

	// A's own decisions: a protected ref, and a reader.
	writer.MustGit(dir, "commit", "-q", "--amend", "-m", "rewritten")
	if r := writer.Git(dir, "push", "-q", "-f", "origin", "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, "needs admin") {
		t.Errorf("forced push of protected main through B: %d %s", r.Code, r.Stderr)
	}
	reader := n.clientsB["reader"]
	rdir, _ := reader.Clone("acme/web")
	reader.Commit(rdir, "a reader's")
	if r := reader.Git(rdir, "push", "-q", "origin", "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, "permission denied") {
		t.Errorf("a reader's push through B: %d %s", r.Code, r.Stderr)
	}

	// A hostile B names a key A does not have.
	key := filepath.Join(n.b.DataDir, "id_ed25519_replication")
	kh := filepath.Join(n.b.DataDir, "known_hosts")
	host, port := splitHostPort(t, n.srv.SSHAddr)
	out, err := exec.Command("ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+kh,
		"-o", "HostKeyAlias=cpm-server."+n.aName, "-p", port, "git@"+host,
		"cpm-peer forward acme/web SHA256:"+strings.Repeat("A", 43)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not registered at the origin") {
		t.Errorf("a forward naming an unknown key: %v %s", err, out)
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// TestForwardedPushLatency is bench/forward.sh's measurement, not a
// check: the median time of a push directly to A and of one through B
// (forwarded, B synced before it returns). It runs only with CPM_BENCH=1.
func TestForwardedPushLatency(t *testing.T) {
	if os.Getenv("CPM_BENCH") == "" {
		t.Skip("a benchmark: bench/forward.sh runs it")
	}
	n := newTwoNodes(t)
	n.approve(t)
	n.w.MustAdmin("server", "approve", n.bName, "--forward-pushes")
	replica, origin := n.b.RepoDir("acme", "web"), n.w.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "the replica on B", func() bool { return revParse(replica, "main") == revParse(origin, "main") })
	median := func(cl *testworld.Client) time.Duration {
		dir, _ := cl.Clone("acme/web")
		var ds []time.Duration
		for i := range 9 {
			cl.Commit(dir, fmt.Sprint("push ", i, " ", time.Now().UnixNano()))
			start := time.Now()
			cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
			ds = append(ds, time.Since(start))
			waitFor(t, 30*time.Second, "B to follow", func() bool { return revParse(replica, "main") == revParse(origin, "main") })
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	direct, via := median(n.clients["writer"]), median(n.clientsB["writer"])
	fmt.Printf("push to A directly: %d ms median of 9\npush through B (forwarded, B synced): %d ms median of 9\nthrough B / direct: %.2f\n",
		direct.Milliseconds(), via.Milliseconds(), float64(via)/float64(direct))
}
