package httpe2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// TestHTTPCluster: every node of a cluster serves HTTP, and a push over
// HTTP to a node that is not the repository's primary is relayed there
// like an ssh session (stateless mode, the token identified afresh on
// the primary), acknowledged once a replica holds it, and audited with
// transport http and the relaying node as via; a clone through the other
// node sees it.
func TestHTTPCluster(t *testing.T) {
	c := testworld.NewClusterWith(t, bin.OnDatabase(pg.Database), 2,
		testworld.ClusterOptions{Flags: []string{"--http-listen", "127.0.0.1:0"}})
	n1, n2 := c.Node(1), c.Node(2)
	key := n1.NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", key.PubPath)
	c.MustAdmin(1, "org", "create", "acme")
	c.MustAdmin(1, "org", "add-member", "acme", "alice", "--role", "owner")
	c.MustAdmin(1, "repo", "create", "acme/web") // node-1 is its primary
	out := strings.Split(strings.TrimSpace(c.MustAdmin(1, "token", "create", "alice", "--name", "ci")), "\n")
	token := out[len(out)-1]

	h := &httpWorld{t: t, w: n2.World, home: filepath.Join(n2.Root, "home")}
	os.MkdirAll(h.home, 0o700)
	dir := filepath.Join(n2.Root, "work")
	h.mustGit("", nil, "init", "-q", "-b", "main", dir)
	os.WriteFile(filepath.Join(dir, "README"), []byte("over http\n"), 0o644)
	h.mustGit(dir, nil, "add", "README")
	h.mustGit(dir, nil, "commit", "-q", "-m", "first")
	head := h.mustGit(dir, nil, "rev-parse", "HEAD")

	viaN2 := "http://" + n2.Server.HTTPAddr + "/acme/web.git"
	r := h.git(dir, withToken(token), "push", viaN2, "main")
	if r.Code != 0 {
		t.Fatalf("push over HTTP to the non-primary node: exit %d\n%s\nnode-2:\n%s", r.Code, r.Stderr, n2.Server.Log())
	}
	for _, nd := range []*testworld.Node{n1, n2} {
		got, err := exec.Command("git", "--git-dir", nd.RepoDir("acme", "web"), "rev-parse", "refs/heads/main").Output()
		if err != nil || strings.TrimSpace(string(got)) != head {
			t.Errorf("%s holds main at %q (%v), want %s", nd.Name, got, err, head)
		}
	}
	audit := c.MustAdmin(1, "audit", "--json", "--limit", "1")
	if !strings.Contains(audit, `"transport": "http"`) || !strings.Contains(audit, `"via": "node-2"`) {
		t.Errorf("the relayed push's audit row:\n%s", audit)
	}
	if !strings.Contains(n1.Server.Log(), `"transport":"http"`) {
		t.Errorf("the primary logged no http session")
	}
	clone := filepath.Join(n2.Root, "clone")
	h.mustGit("", withToken(token), "clone", "-q", viaN2, clone)
	if got := h.mustGit(clone, nil, "rev-parse", "HEAD"); got != head {
		t.Errorf("clone through node-2: HEAD %s, want %s", got, head)
	}
}

// TestHTTPClusterLFS: the Git LFS HTTPS API of a node that is not the
// repository's primary relays what only the primary may do (the
// upload's batch, PUT and verify, every lock change) there over the
// nodes' ssh, the token identified afresh on the primary, and the batch
// answer's actions point at the node the client used; a clone with LFS
// through the other node gets the object.
func TestHTTPClusterLFS(t *testing.T) {
	if _, err := exec.LookPath("git-lfs"); err != nil {
		t.Fatalf("git-lfs is not installed (make deps installs it): %v", err)
	}
	certDir := t.TempDir()
	cert, certKey := filepath.Join(certDir, "tls-cert.pem"), filepath.Join(certDir, "tls-key.pem")
	writeCert(t, cert, certKey, "127.0.0.1") // both nodes' HTTPS
	c := testworld.NewClusterWith(t, bin.OnDatabase(pg.Database), 2, testworld.ClusterOptions{
		Flags: []string{"--http-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", certKey}})
	n1, n2 := c.Node(1), c.Node(2)
	c.MustAdmin(1, "user", "add", "alice")
	c.MustAdmin(1, "org", "create", "acme")
	c.MustAdmin(1, "org", "add-member", "acme", "alice", "--role", "owner")
	c.MustAdmin(1, "repo", "create", "acme/art") // node-1 is its primary
	out := strings.Split(strings.TrimSpace(c.MustAdmin(1, "token", "create", "alice", "--name", "ci")), "\n")
	env := withToken(out[len(out)-1])

	h := &httpWorld{t: t, w: n2.World, home: filepath.Join(n2.Root, "home"), ca: cert}
	os.MkdirAll(h.home, 0o700)
	h.mustGit("", nil, "lfs", "install", "--skip-repo")
	viaN2 := "https://" + n2.Server.HTTPAddr + "/acme/art.git"
	dir := filepath.Join(n2.Root, "work")
	h.mustGit("", env, "clone", "-q", viaN2, dir)
	l := &lfsWorld{httpWorld: h}
	oid := l.addLFSFile(dir, env, "asset.bin", 200_000)
	if r := h.git(dir, env, "push", "origin", "HEAD:main"); r.Code != 0 {
		t.Fatalf("push with LFS to the non-primary node: exit %d\n%s\nnode-2:\n%s", r.Code, r.Stderr, n2.Server.Log())
	}
	obj := filepath.Join(n1.RepoDir("acme", "art"), "lfs", "objects", oid[:2], oid[2:4], oid)
	if fi, err := os.Stat(obj); err != nil || fi.Size() != 200_000 {
		t.Fatalf("the object on the primary: %v", err)
	}
	// The batch's upload action pointed at node-2, the URL git-lfs used,
	// which relayed the PUT too: the primary stored it as relayed.
	relayedPut := false
	for _, line := range strings.Split(n1.Server.Log(), "\n") {
		relayedPut = relayedPut || (strings.Contains(line, `"via":"node-2"`) && strings.Contains(line, `"objects_up":1`))
	}
	if !relayedPut {
		t.Errorf("the primary logged no upload relayed by node-2:\n%s", n1.Server.Log())
	}

	clone := filepath.Join(n1.Root, "clone")
	viaN1 := "https://" + n1.Server.HTTPAddr + "/acme/art.git"
	h.mustGit("", env, "clone", "-q", viaN1, clone)
	want, _ := os.ReadFile(filepath.Join(dir, "asset.bin"))
	if got, _ := os.ReadFile(filepath.Join(clone, "asset.bin")); !bytes.Equal(got, want) {
		t.Fatalf("cloned through node-1: %d bytes, want %d", len(got), len(want))
	}

	if out := h.mustGit(dir, env, "lfs", "lock", "asset.bin"); !strings.Contains(out, "Locked asset.bin") {
		t.Fatalf("lock through node-2: %q", out)
	}
	if out := h.mustGit(clone, env, "lfs", "locks"); !strings.Contains(out, "asset.bin") {
		t.Fatalf("locks through node-1: %q", out)
	}
	h.mustGit(dir, env, "lfs", "unlock", "asset.bin")
	if out := h.mustGit(clone, env, "lfs", "locks"); strings.Contains(out, "asset.bin") {
		t.Fatalf("still locked: %q", out)
	}
}
