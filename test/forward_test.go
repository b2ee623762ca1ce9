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
	// A's session log line names the command (it was empty).
	if !strings.Contains(n.srv.Log(), `"command":"cpm-peer forward"`) {
		t.Errorf("A's log has no session line with command cpm-peer forward:\n%s", n.srv.Log())
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

// TestForwardedPushesAreBounded: what B's replication key can make A do
// with --forward-pushes approved. Through B's gateway and by driving
// `cpm-peer forward` directly with B's key (what anyone holding that key
// can do), A takes a forwarded push only for a repository B holds as a
// replica inside its scope, never with more than write (a site admin
// cannot rewrite or delete protected main), never creating a repository,
// and the pusher reads A's reason.
func TestForwardedPushesAreBounded(t *testing.T) {
	n := newTwoNodes(t)
	origin := n.w.RepoDir("acme", "web")
	seed := revParse(origin, "main")
	// A approves B, for forwarding too; B has not approved A yet, so A
	// cannot have delivered any replica there.
	n.w.MustAdmin("server", "approve", n.bName, "--forward-pushes")
	owner := n.clients["owner"]
	odir, _ := owner.Clone("acme/web")
	owner.Commit(odir, "through a hostile B")
	r := n.forwardAs(t, owner, odir, "acme/web", n.keys["owner"].Fingerprint, "push", "origin", "HEAD:refs/heads/hostile")
	if r.Code == 0 || !strings.Contains(r.Stderr, "node-b holds no replica of it") {
		t.Errorf("a forwarded push to a repository B does not hold: %d %s", r.Code, r.Stderr)
	}

	n.b.MustAdmin("server", "approve", n.aName)
	n.w.MustAdmin("sync", "retry") // no waiting out the backoff of B's refusals
	waitFor(t, 30*time.Second, "A's record of both replicas on B", func() bool {
		web, pub := jobOf(t, n.company, "acme/web", n.bName), jobOf(t, n.company, "acme/pub", n.bName)
		return web != nil && pub != nil && web["fingerprint"] != "" && pub["fingerprint"] != ""
	})

	// A site admin pushing through B has write, not admin, on A.
	sa := n.clientsB["siteadmin"]
	dir, r := sa.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone from B: %s", r.Stderr)
	}
	sa.MustGit(dir, "commit", "-q", "--amend", "-m", "rewritten by a site admin")
	if r := sa.Git(dir, "push", "-f", "origin", "HEAD:main"); r.Code == 0 ||
		!strings.Contains(r.Stderr, "force-push of protected refs/heads/main needs admin, which a push forwarded by a neighbour never carries") {
		t.Errorf("a site admin's forced push of main through B: %d %s", r.Code, r.Stderr)
	}
	if r := sa.Git(dir, "push", "origin", ":main"); r.Code == 0 || !strings.Contains(r.Stderr, "delete of protected refs/heads/main needs admin") {
		t.Errorf("a site admin's deletion of main through B: %d %s", r.Code, r.Stderr)
	}
	// The same, straight from B's key.
	r = n.forwardAs(t, sa, dir, "acme/web", n.keys["siteadmin"].Fingerprint, "push", "-f", "origin", "HEAD:main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "never carries") {
		t.Errorf("a site admin's forced push of main, forwarded with B's key: %d %s", r.Code, r.Stderr)
	}
	if got := revParse(origin, "main"); got != seed {
		t.Fatalf("A's main: %s, want it left at %s", got, seed)
	}

	// No repository is created by a forwarded push, not even by its org owner.
	r = n.forwardAs(t, owner, odir, "acme/made-by-b", n.keys["owner"].Fingerprint, "push", "origin", "HEAD:main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "acme/made-by-b: not forwarded: node-b holds no replica of it") {
		t.Errorf("a forwarded push to create acme/made-by-b: %d %s", r.Code, r.Stderr)
	}
	if strings.Contains(n.w.MustAdmin("repo", "list"), "made-by-b") {
		t.Error("a forwarded push created acme/made-by-b")
	}

	// Outside B's scope: refused, though B still has the old replica.
	n.w.MustAdmin("server", "set", n.bName, "--repos", "acme/pub")
	r = n.forwardAs(t, owner, odir, "acme/web", n.keys["writer"].Fingerprint, "push", "origin", "HEAD:refs/heads/hostile")
	if r.Code == 0 || !strings.Contains(r.Stderr, "acme/web: not forwarded: node-b holds no replica of it") {
		t.Errorf("a forwarded push outside B's scope: %d %s", r.Code, r.Stderr)
	}
	if revParse(origin, "refs/heads/hostile") != "" {
		t.Error("a forwarded push landed on A where it should not have")
	}
	// B asking for it (cpm-peer want) gets the same answer.
	wantError(t, n.b.Admin("", "sync", "pull", "acme/web", "--from", n.aName), "acme/web: not found among the repositories replicated to node-b")
	// Neither answer tells an existing repository outside the scope from
	// one that does not exist.
	r = n.forwardAs(t, owner, odir, "acme/nonesuch", n.keys["writer"].Fingerprint, "push", "origin", "HEAD:refs/heads/hostile")
	if r.Code == 0 || !strings.Contains(r.Stderr, "acme/nonesuch: not forwarded: node-b holds no replica of it") {
		t.Errorf("a forwarded push to a missing repository: %d %s", r.Code, r.Stderr)
	}
	wantError(t, n.b.Admin("", "sync", "pull", "acme/nonesuch", "--from", n.aName), "acme/nonesuch: not found among the repositories replicated to node-b")
}

// forwardAs pushes from dir straight to A with B's replication key, as
// the key fingerprint names: what anyone holding B's key can do. It runs
// `cpm-peer forward` and drops A's first line ("ok", "deny …") before git
// reads the rest, printing it on stderr.
func (n *twoNodes) forwardAs(t *testing.T, cl *testworld.Client, dir, repo, fingerprint string, args ...string) testworld.Result {
	t.Helper()
	host, port := splitHostPort(t, n.srv.SSHAddr)
	script := filepath.Join(t.TempDir(), "forward.sh")
	body := fmt.Sprintf(`#!/bin/sh
ssh -i '%s' -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile='%s' -o HostKeyAlias=cpm-server.%s -p %s git@%s 'cpm-peer forward %s %s' |
{ IFS= read -r first; echo "origin said: $first" >&2; exec cat; }
`, filepath.Join(n.b.DataDir, "id_ed25519_replication"), filepath.Join(n.b.DataDir, "known_hosts"), n.aName, port, host, repo, fingerprint)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return cl.GitVia("sh "+script, nil, dir, args...)
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
