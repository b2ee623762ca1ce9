package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// freeLoopbackPort finds a port free on every listed loopback address.
func freeLoopbackPort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for _, h := range hosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

func TestNeighborDiscovery(t *testing.T) {
	port := freeLoopbackPort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	p := strconv.Itoa(port)
	a := testworld.New(t, bin)
	b := testworld.New(t, bin)
	// A node advertises its ssh port on the address that answered.
	srvA := a.StartServer("--listen", "127.0.0.2:0", "--git-listen", "127.0.0.2:"+p)
	srvB := b.StartServer("--listen", "127.0.0.3:0", "--git-listen", "127.0.0.3:"+p)
	// Not cpm: a plain TCP listener that accepts and says nothing...
	plain, err := net.Listen("tcp", "127.0.0.4:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// ...and a real git daemon.
	daemon := exec.Command("git", "daemon", "--listen=127.0.0.5", "--port="+p, "--export-all", "--base-path="+a.Root, "--reuseaddr")
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	waitFor(t, 10*time.Second, "git daemon", func() bool {
		c, err := net.Dial("tcp", "127.0.0.5:"+p)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	start := time.Now()
	nodes := jsonList(t, a, "neighbor", "discover", "127.0.0.0/29", "--port", p)
	t.Logf("discovery of a /29: %v", time.Since(start))
	if len(nodes) != 2 || nodes[0]["host"] != "127.0.0.2" || nodes[1]["host"] != "127.0.0.3" {
		t.Fatalf("found %v, want exactly the cpm nodes on 127.0.0.2 and 127.0.0.3", nodes)
	}
	for i, srv := range []*testworld.Server{srvA, srvB} {
		if fmt.Sprint(nodes[i]["ssh_port"]) != srv.Port() || nodes[i]["version"] == "" || nodes[i]["name"] == "" {
			t.Errorf("node %d: %v (ssh at %s)", i, nodes[i], srv.SSHAddr)
		}
	}
	// A real git client talking to a cpm git:// port is unaffected.
	if out, err := exec.Command("git", "ls-remote", "git://127.0.0.2:"+p+"/acme/none.git").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "repository not found") {
		t.Errorf("git client against a cpm node: %v %s", err, out)
	}

	// --add registers them unapproved, pinned with the key they showed.
	out := b.MustAdmin("neighbor", "discover", "127.0.0.2/32", "--port", p, "--add")
	if !strings.Contains(out, "presents host key SHA256:") || !strings.Contains(out, "unapproved") {
		t.Errorf("discover --add: %s", out)
	}
	servers := jsonList(t, b, "server", "list")
	if len(servers) != 1 || servers[0]["role"] != "neighbor" || servers[0]["approved"] != false ||
		fmt.Sprint(servers[0]["port"]) != srvA.Port() {
		t.Fatalf("servers after --add: %v", servers)
	}
	b.MustAdmin("server", "approve", servers[0]["name"].(string))
	if s := jsonList(t, b, "server", "list"); s[0]["approved"] != true {
		t.Errorf("approve: %v", s)
	}

	// Bounds: never more than a /16 without --force; bad input refused.
	wantError(t, a.Admin("", "neighbor", "discover", "10.0.0.0/8"), "needs --force")
	wantError(t, a.Admin("", "neighbor", "discover", "not-a-cidr"), "invalid CIDR")
}

// twoNodes is a company on node A (127.0.0.2) and an empty node B
// (127.0.0.3), each having found, registered and approved the other.
type twoNodes struct {
	*company
	b          *testworld.World
	srvB       *testworld.Server
	bName      string // B as A calls it
	aName      string // A as B calls it
	clientsB   map[string]*testworld.Client
	gitPortStr string
}

func newTwoNodes(t *testing.T, aFlags ...string) *twoNodes {
	t.Helper()
	port := freeLoopbackPort(t, "127.0.0.2", "127.0.0.3")
	p := strconv.Itoa(port)
	c := newCompany(t, append([]string{"--listen", "127.0.0.2:0", "--git-listen", "127.0.0.2:" + p}, aFlags...)...)
	b := testworld.New(t, bin)
	b.MustAdmin("init", "--node-name", "node-b")
	srvB := b.StartServer("--listen", "127.0.0.3:0", "--git-listen", "127.0.0.3:"+p)
	n := &twoNodes{company: c, b: b, srvB: srvB, clientsB: map[string]*testworld.Client{}, gitPortStr: p}

	// A scans the network: it skips itself and registers B, unapproved.
	out := c.w.MustAdmin("neighbor", "discover", "127.0.0.0/29", "--port", p, "--add")
	if !strings.Contains(out, "this node") || !strings.Contains(out, "delivers replicas with key SHA256:") {
		t.Fatalf("discover --add on A: %s", out)
	}
	servers := jsonList(t, c.w, "server", "list")
	if len(servers) != 1 || servers[0]["approved"] != false || servers[0]["name"] != "node-b" {
		t.Fatalf("A's servers after --add: %v", servers)
	}
	n.bName = "node-b"
	// B registers A the same way; nothing flows until both approve.
	b.MustAdmin("neighbor", "discover", "127.0.0.2/32", "--port", p, "--add")
	n.aName = jsonList(t, b, "server", "list")[0]["name"].(string)
	for name, k := range c.keys {
		n.clientsB[name] = srvB.Client(k)
	}
	return n
}

func (n *twoNodes) approve(t *testing.T) {
	t.Helper()
	n.w.MustAdmin("server", "approve", n.bName)
	if out := n.b.MustAdmin("server", "approve", n.aName); !strings.Contains(out, "may deliver its replicas here") {
		t.Errorf("approve on B: %s", out)
	}
}

func TestNeighborReplicasServeReadsWithTheOriginsPermissions(t *testing.T) {
	n := newTwoNodes(t)
	replica := n.b.RepoDir("acme", "web")
	writer := n.clients["writer"]
	dir, _ := writer.Clone("acme/web")

	// Before approval nothing reaches B: its jobs are queued, but the
	// workers claim none for an unapproved neighbour, so none has been
	// tried, and there is no work that could still be on its way.
	writer.Commit(dir, "before approval")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	for _, s := range jsonList(t, n.w, "server", "list") {
		if s["name"] == n.bName && s["approved"] != false {
			t.Fatalf("B approved already: %v", s)
		}
	}
	for _, j := range jsonList(t, n.w, "sync", "status") {
		if j["server"] == n.bName && (j["attempts"] != float64(0) || j["last_success_at"] != "") {
			t.Fatalf("a job for B was tried before approval: %v", j)
		}
	}
	if _, err := os.Stat(replica); err == nil {
		t.Fatal("a replica reached B before approval")
	}

	n.approve(t)
	commit := writer.Commit(dir, "after approval")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 20*time.Second, "the push to appear on B", func() bool { return revParse(replica, "main") == commit })
	if out, err := exec.Command("git", "-C", replica, "fsck", "--no-dangling").CombinedOutput(); err != nil {
		t.Fatalf("fsck of B's replica: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "acme/pub on B", func() bool { return revParse(n.b.RepoDir("acme", "pub"), "main") != "" })
	// B can ask for a repository of A's now, instead of waiting.
	commit = writer.Commit(dir, "pulled by B")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	if out := n.b.MustAdmin("sync", "pull", "acme/web", "--from", n.aName); revParse(replica, "main") != commit {
		t.Errorf("after sync pull on B: %s, want %s (%s)", revParse(replica, "main"), commit, out)
	}
	wantError(t, n.b.Admin("", "sync", "pull", "acme/nothing", "--from", n.aName), "not found")

	// Every principal reads on B exactly what it reads on A.
	for name := range n.keys {
		for _, repo := range []string{"acme/web", "acme/pub"} {
			onA := outcome(n.clients[name].Git("", "ls-remote", n.clients[name].URL(repo)))
			onB := outcome(n.clientsB[name].Git("", "ls-remote", n.clientsB[name].URL(repo)))
			if onA != onB {
				t.Errorf("%s reading %s: %s on A, %s on B", name, repo, onA, onB)
			}
		}
	}
	if got := outcome(n.clientsB["stranger"].Git("", "ls-remote", n.clientsB["stranger"].URL("acme/web"))); got != "N" {
		t.Errorf("stranger on B's private replica: %s", got)
	}
	// Public replicas are served anonymously over B's git:// too.
	if out, err := exec.Command("git", "ls-remote", "git://"+n.srvB.GitAddr+"/acme/pub.git").CombinedOutput(); err != nil {
		t.Errorf("git:// on B: %v %s", err, out)
	}

	// A push to B is refused with A's URL; to those who may not read, it
	// does not exist.
	wb := n.clientsB["writer"]
	dirB, r := wb.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone from B: %s", r.Stderr)
	}
	if head := revParse(dirB, "HEAD"); head != commit {
		t.Errorf("clone from B at %s, want %s", head, commit)
	}
	wb.Commit(dirB, "to the replica")
	r = wb.Git(dirB, "push", "origin", "HEAD:main")
	wantURL := "ssh://git@127.0.0.2:" + n.srv.Port() + "/acme/web.git"
	if r.Code == 0 || !strings.Contains(r.Stderr, "read-only replica of "+n.aName) || !strings.Contains(r.Stderr, wantURL) {
		t.Errorf("push to the replica: %d %s (want %s)", r.Code, r.Stderr, wantURL)
	}
	if got := outcome(n.clientsB["stranger"].Git(dirB, "push", n.clientsB["stranger"].URL("acme/web"), "HEAD:main")); got != "N" {
		t.Errorf("stranger pushing to B: %s", got)
	}
	if revParse(replica, "main") != commit {
		t.Error("the refused push changed the replica")
	}

	// A key removed on A stops working on B after the next sync.
	reader := n.clientsB["reader"]
	if got := outcome(reader.Git("", "ls-remote", reader.URL("acme/web"))); got != "A" {
		t.Fatalf("reader on B before removal: %s", got)
	}
	n.w.MustAdmin("key", "remove", n.keys["reader"].Fingerprint)
	n.w.MustAdmin("sync", "push", "acme/web", "--to", n.bName)
	if got := outcome(reader.Git("", "ls-remote", reader.URL("acme/web"))); got == "A" {
		t.Errorf("a key removed on A still reads on B")
	}
	// A member dropped on A loses the org's repositories on B, with no
	// explicit sync: metadata follows every change.
	n.w.MustAdmin("org", "remove-member", "acme", "member")
	member := n.clientsB["member"]
	waitFor(t, 20*time.Second, "the dropped member to lose access on B", func() bool {
		return outcome(member.Git("", "ls-remote", member.URL("acme/web"))) == "N"
	})

	// server check reports the neighbour; info on B names the origin.
	if out := n.w.MustAdmin("server", "check", n.bName); !strings.Contains(out, "node:     node-b") || !strings.Contains(out, "ping:") {
		t.Errorf("server check of a neighbour: %s", out)
	}
	if r := n.clientsB["owner"].SSH(nil, "info"); !strings.Contains(r.Stdout, "acme/web  (replica of "+n.aName+")") {
		t.Errorf("info on B: %s %s", r.Stdout, r.Stderr)
	}

	// sync pull --from the neighbour restores what A lost.
	lost := n.w.RepoDir("acme", "web")
	if err := os.RemoveAll(filepath.Join(lost, "objects", "pack")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(lost, "objects", "pack"), 0o755)
	n.w.MustAdmin("sync", "pull", "acme/web", "--from", n.bName)
	if out, err := exec.Command("git", "-C", lost, "fsck", "--no-dangling").CombinedOutput(); err != nil {
		t.Fatalf("fsck after pulling from the neighbour: %v\n%s", err, out)
	}
}

func TestNeighborPeerCommandsAreConfined(t *testing.T) {
	n := newTwoNodes(t)
	n.approve(t)
	writer := n.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "one")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	replica := n.b.RepoDir("acme", "web")
	waitFor(t, 20*time.Second, "the replica", func() bool { return revParse(replica, "main") == commit })

	// A user's key cannot speak the peer protocol.
	for _, cmd := range []string{"cpm-peer hello", "cpm-peer meta", "cpm-peer rsync-in acme/web --server --daemon ."} {
		r := n.clientsB["siteadmin"].SSH(nil, cmd)
		if r.Code == 0 || !strings.Contains(r.Stderr, "for approved neighbour nodes") {
			t.Errorf("%q by a user: %d %s", cmd, r.Code, r.Stderr)
		}
	}

	// The peer's own key: only cpm-peer commands, only within its replicas.
	peerKey := testworld.Key{Path: filepath.Join(n.w.DataDir, "id_ed25519_replication")}
	peer := n.srvB.Client(peerKey)
	for cmd, want := range map[string]string{
		"git-upload-pack acme/web":                           "runs cpm-peer commands only",
		"cpm-peer rsync-in acme/web --server --daemon --x .": "takes ORG/REPO --server --daemon .",
		"cpm-peer rsync-in acme/web; id --server --daemon .": "invalid",
		"cpm-peer prepare ../etc":                            "invalid",
		"cpm-peer refs other/repo":                           "not in the metadata",
	} {
		r := peer.SSH(nil, cmd)
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("%q by the peer: %d %s (want %q)", cmd, r.Code, r.Stderr, want)
		}
	}
	// A local repository of B is out of reach of the peer.
	n.b.MustAdmin("user", "add", "bob")
	n.b.MustAdmin("org", "create", "local", "--owner", "bob")
	n.b.MustAdmin("repo", "create", "local/own")
	if r := peer.SSH(nil, "cpm-peer prepare local/own"); r.Code == 0 {
		t.Errorf("peer prepared B's own repository: %s", r.Stdout)
	}
	// The daemon module keeps config, hooks and alternates out of reach,
	// whatever the sender asks.
	evil := filepath.Join(n.w.Root, "evil")
	os.MkdirAll(filepath.Join(evil, "info"), 0o755)
	os.WriteFile(filepath.Join(evil, "info", "alternates"), []byte("/etc\n"), 0o644)
	os.WriteFile(filepath.Join(evil, "config"), []byte("[core]\n\tfsmonitor = touch /tmp/pwned\n"), 0o644)
	rsh := "ssh -i " + peerKey.Path + " -o IdentitiesOnly=yes -o UserKnownHostsFile=" + n.srvB.KnownHosts + " -p " + n.srvB.Port()
	for _, dst := range []string{"objects/", "repo/"} {
		exec.Command("rsync", "-r", "-e", rsh, "--rsync-path=cpm-peer rsync-in acme/web", evil+"/",
			"git@127.0.0.3::"+dst).Run()
	}
	if _, err := os.Stat(filepath.Join(replica, "objects", "info", "alternates")); err == nil {
		t.Error("the peer wrote alternates")
	}
	if cfg, _ := os.ReadFile(filepath.Join(replica, "config")); strings.Contains(string(cfg), "fsmonitor") {
		t.Error("the peer wrote the replica's config")
	}
	if revParse(replica, "main") != commit {
		t.Error("the replica changed")
	}

	// Once B removes A, A's replicas are no longer served on B: their
	// permissions could never change again.
	owner := n.clientsB["owner"]
	if r := owner.Git("", "ls-remote", owner.URL("acme/web")); r.Code != 0 {
		t.Fatalf("owner on B: %s", r.Stderr)
	}
	n.b.MustAdmin("server", "remove", n.aName)
	if r := owner.Git("", "ls-remote", owner.URL("acme/web")); r.Code == 0 {
		t.Error("a removed neighbour's replica is still served")
	}
	if _, err := os.Stat(replica); err != nil {
		t.Errorf("the replica itself should stay on disk: %v", err)
	}
}

func TestNeighborFollowsAKeyRotation(t *testing.T) {
	n := newTwoNodes(t)
	n.approve(t)
	replica := n.b.RepoDir("acme", "web")
	waitFor(t, 20*time.Second, "the first replica", func() bool { return revParse(replica, "main") == n.main })
	out := n.w.MustAdmin("server", "rotate-key")
	if !strings.Contains(out, "rotation finished") {
		t.Fatalf("rotate-key: %s\n%s", out, jsonList(t, n.w, "server", "list"))
	}
	newFP := strings.Fields(strings.Split(out, "\n")[1])[2]
	if s := jsonList(t, n.b, "server", "list"); s[0]["peer_fingerprint"] != newFP {
		t.Errorf("B knows A by %v, want %s", s[0]["peer_fingerprint"], newFP)
	}
	writer := n.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "after the rotation")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 20*time.Second, "a push after the rotation on B", func() bool { return revParse(replica, "main") == commit })
}

// Approvals may come in either order: a neighbour that does not accept
// this node yet is waited for, not blocked.
func TestNeighborApprovedOnOneSideFirst(t *testing.T) {
	n := newTwoNodes(t)
	n.w.MustAdmin("server", "approve", n.bName)
	writer := n.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "before B approves A")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	// A tries, and B refuses its key: the worker's own record of the attempt.
	waitFor(t, 30*time.Second, "A's attempt to reach B", func() bool {
		j := jobOf(t, n.company, "acme/web", n.bName)
		return j != nil && j["attempts"].(float64) >= 1
	})
	if s := jsonList(t, n.w, "server", "list"); s[0]["blocked_reason"] != nil {
		t.Errorf("B is blocked while it waits for its operator: %v", s[0]["blocked_reason"])
	}
	n.b.MustAdmin("server", "approve", n.aName)
	replica := n.b.RepoDir("acme", "web")
	waitFor(t, 60*time.Second, "the push on B once B approved A", func() bool { return revParse(replica, "main") == commit })
}
