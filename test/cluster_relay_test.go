package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"cpm/internal/store"
	"cpm/internal/testworld"
)

// clusterNode is one node of a two-node cluster: its data directory and
// its running cpm-shell serve.
type clusterNode struct {
	*testworld.World
	name, addr string
	srv        *testworld.Server
}

// newClusterPair initialises two nodes, n1 on 127.0.0.2 and n2 on
// 127.0.0.3, on one PostgreSQL database (n1 creates the cluster, n2
// joins it) and serves both.
func newClusterPair(t *testing.T) (n1, n2 *clusterNode, database string) {
	t.Helper()
	return newClusterPairServing(t, false)
}

// newClusterPairServing is newClusterPair with git:// listening too on
// each node's address when git is set, and extra flags for both servers.
func newClusterPairServing(t *testing.T, git bool, extra ...string) (n1, n2 *clusterNode, database string) {
	t.Helper()
	database = pg.Database(t)
	var nodes []*clusterNode
	for i, host := range []string{"127.0.0.2", "127.0.0.3"} {
		root := t.TempDir()
		w := &testworld.World{T: t, Bin: bin, Root: root, DataDir: filepath.Join(root, "data"), Database: database}
		n := &clusterNode{World: w, name: fmt.Sprintf("n%d", i+1), addr: net.JoinHostPort(host, freePortOn(t, host))}
		w.MustAdmin("init", "--database", database, "--node-name", n.name, "--advertise", n.addr)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		writePublicHostKey(t, n.DataDir)
		gitListen := ""
		if git {
			host, _, _ := net.SplitHostPort(n.addr)
			gitListen = net.JoinHostPort(host, freePortOn(t, host))
		}
		n.srv = n.StartServer(append([]string{"--listen", n.addr, "--git-listen", gitListen}, extra...)...)
	}
	return nodes[0], nodes[1], database
}

func freePortOn(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// writePublicHostKey writes the .pub of the host key init placed, which
// StartServer pins for the clients.
func writePublicHostKey(t *testing.T, dataDir string) {
	t.Helper()
	key := filepath.Join(dataDir, "ssh_host_ed25519_key")
	out, err := exec.Command("ssh-keygen", "-y", "-f", key).Output()
	if err != nil {
		t.Fatalf("host key of %s: %v", dataDir, err)
	}
	if err := os.WriteFile(key+".pub", out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// relayedSessions counts the sessions of command that node n served for
// another node (its log's session events with via).
func relayedSessions(n *clusterNode, command, via string) int {
	c := 0
	for _, l := range strings.Split(n.srv.Log(), "\n") {
		if strings.Contains(l, `"message":"session"`) && strings.Contains(l, `"command":"`+command+`"`) &&
			strings.Contains(l, `"via":"`+via+`"`) {
			c++
		}
	}
	return c
}

// TestClusterPushesAndReadsGoWhereTheRepositoryIs: two nodes on one
// database. A push through the node that is not the primary lands on the
// primary (audited via that node) before it returns; a clone through it
// right after sees the push, relayed while its copy lags and local once
// the primary's workers brought it up to date; a key removed on either
// node is refused by both at once; a neighbour's key cannot relay.
func TestClusterPushesAndReadsGoWhereTheRepositoryIs(t *testing.T) {
	n1, n2, database := newClusterPair(t)
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n2.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	via1, via2 := n1.srv.Client(alice), n2.srv.Client(alice)

	// Push-to-create through n1: n1 is the primary, n2 its replica.
	work := filepath.Join(n1.Root, "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	first := via1.Commit(work, "first")
	via1.MustGit(work, "remote", "add", "origin", via1.URL("acme/web"))
	via1.MustGit(work, "push", "-q", "origin", "main")
	st := openStore(t, database)
	placed, err := st.Placement(context.Background(), "n2", "acme", "web")
	if err != nil || placed.Primary.Name != "n1" {
		t.Fatalf("placement of acme/web: %+v %v", placed, err)
	}
	primary, replica := n1.RepoDir("acme", "web"), n2.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "n2's copy", func() bool { return revParse(replica, "main") == first })

	// A push through n2 lands on n1 before it returns, as alice.
	via2.MustGit(work, "remote", "set-url", "origin", via2.URL("acme/web"))
	second := via2.Commit(work, "second, through n2")
	if r := via2.Git(work, "push", "-q", "origin", "main"); r.Code != 0 {
		t.Fatalf("push through n2: %s", r.Stderr)
	}
	if got := revParse(primary, "main"); got != second {
		t.Fatalf("the primary's main after a push through n2: %s, want %s", got, second)
	}
	if relayedSessions(n1, "git-receive-pack", "n2") != 1 {
		t.Errorf("n1 logged no relayed push:\n%s", n1.srv.Log())
	}
	if audit := n1.MustAdmin("audit", "--json", "--limit", "5"); !strings.Contains(audit, `"via": "n2"`) {
		t.Errorf("the push's audit row does not name n2:\n%s", audit)
	}
	// A clone through n2 right after sees it, whichever way it was served.
	if dir, r := via2.Clone("acme/web"); r.Code != 0 || revParse(dir, "main") != second {
		t.Fatalf("clone through n2 right after the push: %s %s", revParse(dir, "main"), r.Stderr)
	}

	// Replicated: n2's copy has the primary's refs and is current.
	waitFor(t, 30*time.Second, "n2's copy current", func() bool {
		p, err := st.Placement(context.Background(), "n2", "acme", "web")
		return err == nil && p.Current() && revParse(replica, "main") == second
	})
	if a, b := showRef(primary), showRef(replica); a != b || a == "" {
		t.Errorf("refs differ:\nprimary %s\nreplica %s", a, b)
	}
	// Current: served by n2 itself.
	before := relayedSessions(n1, "git-upload-pack", "n2")
	if dir, r := via2.Clone("acme/web"); r.Code != 0 || revParse(dir, "main") != second {
		t.Fatalf("clone through n2, current: %s", r.Stderr)
	}
	if after := relayedSessions(n1, "git-upload-pack", "n2"); after != before {
		t.Errorf("a clone through a current replica was relayed (%d → %d)", before, after)
	}
	// Lagging (its copy's generation held back): relayed to the primary.
	lag(t, database, "n2", "acme", "web")
	if dir, r := via2.Clone("acme/web"); r.Code != 0 || revParse(dir, "main") != second {
		t.Fatalf("clone through n2, lagging: %s", r.Stderr)
	}
	if after := relayedSessions(n1, "git-upload-pack", "n2"); after != before+1 {
		t.Errorf("a clone through a lagging replica was not relayed (%d → %d)", before, after)
	}

	// A key removed on n2 is refused by both at once.
	n2.MustAdmin("key", "remove", alice.Fingerprint)
	for _, c := range []*testworld.Client{via1, via2} {
		if r := c.Git("", "ls-remote", c.URL("acme/web")); r.Code == 0 {
			t.Errorf("removed key still reads through %s", c.URL(""))
		}
	}
}

// TestClusterRelayIsForNodesOnly: a neighbour's replication key, and a
// user's key, cannot run cpm-peer relay on a node.
func TestClusterRelayIsForNodesOnly(t *testing.T) {
	n1, n2, _ := newClusterPair(t)
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	n1.MustAdmin("repo", "create", "acme/web")
	nb := n1.NewKey("neighbour")
	hostKey, err := os.ReadFile(filepath.Join(n1.DataDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	n1.MustAdmin("server", "add", "nb", "--host", "127.0.0.5", "--role", "neighbor", "--host-key", strings.TrimSpace(string(hostKey)))
	// A neighbour whose key is approved: discover would record it; here
	// the row gets the key directly through the database.
	setPeerKey(t, n1.Database, "nb", nb)
	n1.MustAdmin("server", "approve", "nb")
	header := `{"command":"git-upload-pack acme/web","key":"` + alice.Fingerprint + `"}` + "\n"
	for name, key := range map[string]testworld.Key{"a neighbour": nb, "a user": alice} {
		r := n1.srv.Client(key).SSHInput(header+"0000", nil, "cpm-peer relay")
		if r.Code == 0 || strings.Contains(r.Stdout, "version") || !strings.Contains(r.Stderr, "cpm: cpm-peer") {
			t.Errorf("%s ran cpm-peer relay: %d %q %q", name, r.Code, r.Stdout, r.Stderr)
		}
	}
	// A node's key is never a user's: not directly, nor named in a relay.
	nodeKey := testworld.Key{Path: filepath.Join(n2.DataDir, "id_ed25519_replication")}
	out, err := exec.Command("ssh-keygen", "-lf", nodeKey.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	nodeKey.Fingerprint = strings.Fields(string(out))[1]
	asNode := n1.srv.Client(nodeKey)
	if r := asNode.SSH(nil, "git-upload-pack acme/web"); r.Code == 0 || !strings.Contains(r.Stderr, "runs cpm-peer commands only") {
		t.Errorf("a node's key ran git-upload-pack: %d %q", r.Code, r.Stderr)
	}
	header = `{"command":"git-upload-pack acme/web","key":"` + nodeKey.Fingerprint + `"}` + "\n"
	if r := asNode.SSHInput(header+"0000", nil, "cpm-peer relay"); r.Code == 0 || !strings.Contains(r.Stderr, "is not registered") {
		t.Errorf("a relay naming a node's key as the user: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	// The node itself relays a user's session.
	header = `{"command":"git-upload-pack acme/web","key":"` + alice.Fingerprint + `"}` + "\n"
	if r := asNode.SSHInput(header+"0000", nil, "cpm-peer relay"); r.Code != 0 {
		t.Errorf("a node's relay of alice's read: %d %q", r.Code, r.Stderr)
	}
}

func openStore(t *testing.T, database string) *store.Store {
	t.Helper()
	st, err := store.OpenAt(context.Background(), database, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// lag holds node's copy of ORG/REPO one generation behind, as if a push
// had not reached it yet.
func lag(t *testing.T, database, node, org, repo string) {
	t.Helper()
	execSQL(t, database, `UPDATE replication_jobs SET repo_generation = repo_generation - 1
		WHERE server_id = (SELECT id FROM servers WHERE name = $1)
		  AND repo_id = (SELECT r.id FROM repos r JOIN orgs o ON o.id = r.org_id WHERE o.name = $2 AND r.name = $3)`, node, org, repo)
}

func setPeerKey(t *testing.T, database, server string, k testworld.Key) {
	t.Helper()
	f := strings.Fields(k.Public)
	execSQL(t, database, `UPDATE servers SET peer_key = $1, peer_fingerprint = $2 WHERE name = $3`, f[0]+" "+f[1], k.Fingerprint, server)
}

func execSQL(t *testing.T, database, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("pgx", database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows", query, n)
	}
}

// go-git hangs up once it has the push report; a push it made through a
// node that is not the primary still runs post-receive on the primary to
// the end (audit row via that node, the repository's own hooks).
func TestClusterRelayedPushOutlivesAClientThatHangsUp(t *testing.T) {
	p := newPairWithWeb(t)
	n1, n2, via2 := p.n1, p.n2, p.via2

	marker := filepath.Join(n1.Root, "post-receive-ran")
	hooks := filepath.Join(n1.RepoDir("acme", "web"), "hooks", "post-receive.d")
	os.MkdirAll(hooks, 0o755)
	script := fmt.Sprintf("#!/bin/sh\nsleep 1\necho post-receive; echo post-receive >&2\ncat > %s.tmp && mv %s.tmp %s\n", marker, marker, marker)
	if err := os.WriteFile(filepath.Join(hooks, "10-record"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	commit := goGitPushMain(t, via2, "git", n2.srv.KnownHosts, "pushed by go-git through n2")
	if got := revParse(n1.RepoDir("acme", "web"), "main"); got != commit {
		t.Fatalf("the primary's main: %s, want %s", got, commit)
	}
	waitFor(t, 20*time.Second, "post-receive.d on the primary", func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && strings.Contains(string(b), commit+" refs/heads/main")
	})
	waitFor(t, 10*time.Second, "the push's audit row via n2", func() bool {
		for _, e := range jsonList(t, n1.World, "audit", "--limit", "10") {
			if e["action"] == "push" && e["actor"] == "alice" && strings.Contains(fmt.Sprint(e["details"]), "via:n2") {
				return true
			}
		}
		return false
	})

	// Through n2 the user keeps every right (unlike a neighbour's
	// forwarded push): the owner force-pushes protected main; a reader
	// is refused in the words it would get on the primary.
	dir, r := via2.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone through n2: %s", r.Stderr)
	}
	via2.MustGit(dir, "commit", "-q", "--amend", "-m", "rewritten")
	if r := via2.Git(dir, "push", "-q", "-f", "origin", "HEAD:main"); r.Code != 0 {
		t.Errorf("the owner's forced push of main through n2: %s", r.Stderr)
	}
	// A merge through n2 is made on the primary.
	via2.MustGit(dir, "checkout", "-q", "-b", "topic")
	topic := via2.Commit(dir, "on topic")
	via2.MustGit(dir, "push", "-q", "origin", "topic")
	if r := via2.SSH(nil, "merge acme/web topic --into main"); r.Code != 0 || !strings.Contains(r.Stdout, "merged topic into main") {
		t.Fatalf("merge through n2: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if got := revParse(n1.RepoDir("acme", "web"), "main"); got != topic {
		t.Errorf("the primary's main after the merge through n2: %s, want %s", got, topic)
	}
	bob := n1.NewKey("bob")
	n2.MustAdmin("user", "add", "bob", "--key", bob.PubPath)
	n2.MustAdmin("repo", "grant", "acme/web", "bob", "read")
	reader := n2.srv.Client(bob)
	rdir, r := reader.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("a reader's clone through n2: %s", r.Stderr)
	}
	reader.Commit(rdir, "a reader's")
	if r := reader.Git(rdir, "push", "-q", "origin", "HEAD:main"); r.Code == 0 ||
		!strings.Contains(r.Stderr, "cpm: acme/web: permission denied (needs write, has read)") {
		t.Errorf("a reader's push through n2: %d %s", r.Code, r.Stderr)
	}
}

// Git LFS through a node that is not the primary: the upload lands on
// the primary, the object reaches the replica with the repository, a
// lock taken through one node is seen through the other, and a clone
// through the replica smudges the content.
func TestClusterLFSThroughAReplica(t *testing.T) {
	n1, n2, database := newClusterPair(t)
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	via1 := n1.srv.Client(alice)
	work := filepath.Join(n1.Root, "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/web"), "main")

	lfs2, lfs1 := newLFSClient(t, n2.srv.Client(alice)), newLFSClient(t, via1)
	dir, r := lfs2.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone through n2: %s", r.Stderr)
	}
	oid := lfs2.addLFSFile(dir, "asset.bin", 200_000)
	if r := lfs2.git(dir, "push", "-q", "origin", "HEAD:main"); r.Code != 0 {
		t.Fatalf("LFS push through n2: %s", r.Stderr)
	}
	if fi, err := os.Stat(lfsObject(n1.RepoDir("acme", "web"), oid)); err != nil || fi.Size() != 200_000 {
		t.Fatalf("the object on the primary: %v", err)
	}
	st := openStore(t, database)
	waitFor(t, 30*time.Second, "the object and refs on n2", func() bool {
		p, err := st.Placement(context.Background(), "n2", "acme", "web")
		_, serr := os.Stat(lfsObject(n2.RepoDir("acme", "web"), oid))
		return err == nil && p.Current() && serr == nil
	})
	lfs2.mustGit(dir, "lfs", "lock", "asset.bin")
	ldir, r := lfs1.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone through n1: %s", r.Stderr)
	}
	if out := lfs1.mustGit(ldir, "lfs", "locks"); !strings.Contains(out, "asset.bin") {
		t.Errorf("a lock taken through n2 is not seen through n1: %s", out)
	}
	// The lock's audit row says which node carried it.
	var rows []struct {
		Action  string
		Details map[string]any
	}
	json.Unmarshal([]byte(n1.MustAdmin("audit", "--json", "--limit", "20")), &rows)
	locked := false
	for _, r := range rows {
		if r.Action == "lfs.lock" {
			locked = r.Details["via"] == "n2"
		}
	}
	if !locked {
		t.Errorf("the lfs.lock audit row does not name n2 as via: %+v", rows)
	}
	rdir, r := lfs2.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone through n2 with LFS: %s", r.Stderr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "asset.bin"))
	if got, _ := os.ReadFile(filepath.Join(rdir, "asset.bin")); !bytes.Equal(got, want) {
		t.Errorf("smudged through n2: %d bytes, want %d", len(got), len(want))
	}
}

// More sessions relayed at once than one ssh connection carries
// (max_sessions, 4 by default) are all served: relays do not share the
// replication's multiplexed connection.
func TestClusterManyRelaysAtOnce(t *testing.T) {
	p := newPairWithWeb(t)
	n1, n2, database, via2 := p.n1, p.n2, p.database, p.via2
	st := openStore(t, database)
	waitFor(t, 30*time.Second, "n2's copy current", func() bool {
		p, err := st.Placement(context.Background(), "n2", "acme", "web")
		return err == nil && p.Current()
	})
	lag(t, database, "n2", "acme", "web")
	const n = 8
	host, port, _ := net.SplitHostPort(n2.addr)
	errs := make(chan string, n)
	for range n {
		go func() {
			// Each session stays open (upload-pack waits for the
			// client's wants) until all have started, then ends cleanly.
			args := append(append(via2.SSHArgs(), "-p", port), "git@"+host, "git-upload-pack acme/web")
			cmd := exec.Command("ssh", args...)
			cmd.Env = testworld.Env()
			in, _ := cmd.StdinPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				errs <- err.Error()
				return
			}
			time.Sleep(3 * time.Second)
			in.Write([]byte("0000"))
			in.Close()
			if err := cmd.Wait(); err != nil || stderr.Len() > 0 {
				errs <- fmt.Sprint(err, " ", stderr.String())
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Errorf("a relayed session failed: %s", e)
		}
	}
	if got := relayedSessions(n1, "git-upload-pack", "n2"); got != n {
		t.Errorf("%d sessions relayed, want %d", got, n)
	}
}

// TestClusterGitDaemonReadsFromThePrimaryWhenLagging: git:// on a node
// whose copy lags fetches from the primary, as an ssh read does; a
// private repository stays invisible there as everywhere.
func TestClusterGitDaemonReadsFromThePrimaryWhenLagging(t *testing.T) {
	n1, n2, database := newClusterPairServing(t, true)
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	n1.MustAdmin("repo", "create", "acme/pub", "--public")
	n1.MustAdmin("repo", "create", "acme/secret")
	via1 := n1.srv.Client(alice)
	work := filepath.Join(n1.Root, "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	head := via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/pub"), "main")
	lag(t, database, "n2", "acme", "pub")
	before := relayedSessions(n1, "git-upload-pack", "n2")
	out, err := exec.Command("git", "ls-remote", "git://"+n2.srv.GitAddr+"/acme/pub.git").CombinedOutput()
	if err != nil || !strings.Contains(string(out), head+"\trefs/heads/main") {
		t.Fatalf("git:// ls-remote through the lagging n2: %v %s", err, out)
	}
	// The primary logs the session once it ended, maybe after the client.
	waitFor(t, 10*time.Second, "the primary's log of the relayed git:// fetch", func() bool {
		return relayedSessions(n1, "git-upload-pack", "n2") == before+1
	})
	if out, err := exec.Command("git", "ls-remote", "git://"+n2.srv.GitAddr+"/acme/secret.git").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "repository not found") {
		t.Errorf("git:// of a private repository through n2: %v %s", err, out)
	}
}

// pairWithWeb is a two-node cluster where alice, an owner of acme, has
// pushed acme/web (one commit on main) through n1, its primary.
type pairWithWeb struct {
	n1, n2     *clusterNode
	database   string
	alice      testworld.Key
	via1, via2 *testworld.Client // alice's clients through n1 and n2
	work       string            // alice's work tree
}

func newPairWithWeb(t *testing.T) pairWithWeb {
	t.Helper()
	p := pairWithWeb{}
	p.n1, p.n2, p.database = newClusterPair(t)
	p.alice = p.n1.NewKey("alice")
	p.n1.MustAdmin("user", "add", "alice", "--key", p.alice.PubPath)
	p.n1.MustAdmin("org", "create", "acme")
	p.n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	p.via1, p.via2 = p.n1.srv.Client(p.alice), p.n2.srv.Client(p.alice)
	p.work = filepath.Join(p.n1.Root, "work")
	p.via1.MustGit("", "init", "-q", "-b", "main", p.work)
	p.via1.Commit(p.work, "first")
	p.via1.MustGit(p.work, "push", "-q", p.via1.URL("acme/web"), "main")
	return p
}
