package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
	"cpm/internal/transfer"
)

// holdLeases renews every node's lease for an hour, as if each node's
// lease keeper did: a write is accepted and recorded only under a live
// lease.
func holdLeases(t *testing.T, database string, nodes ...string) {
	t.Helper()
	st := openStore(t, database)
	for _, name := range nodes {
		n, err := st.NodeByName(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RenewLease(context.Background(), n.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// syncPair is a two-node cluster with acme/web created on n1 (n2 its
// replica), n1 served with extra flags, and alice's clients of both.
func syncPair(t *testing.T, extra ...string) pairWithWeb {
	t.Helper()
	p := pairWithWeb{}
	p.n1, p.n2, p.database = newClusterPair(t)
	holdLeases(t, p.database, "n1", "n2")
	restart(p.n1, extra...)
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

// restart serves n again on its address with extra flags.
func restart(n *clusterNode, extra ...string) {
	n.srv.Stop()
	n.srv = n.StartServer(append([]string{"--listen", n.addr, "--git-listen", ""}, extra...)...)
}

// refsOf is every ref of the repository at dir, as for-each-ref lists them.
func refsOf(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "for-each-ref", "--format=%(objectname) %(refname)").CombinedOutput()
	if err != nil {
		t.Fatalf("refs of %s: %v\n%s", dir, err, out)
	}
	return string(out)
}

func wherePair(t *testing.T, n *clusterNode, repo string) repoWhere {
	t.Helper()
	var w repoWhere
	out := n.MustAdmin("repo", "where", repo, "--json")
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("repo where %s --json: %v\n%s", repo, err, out)
	}
	return w
}

// metricValue is the value of a metric without labels on the metrics
// page at addr ("" when it is not there).
func metricValue(t *testing.T, addr, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metricsText(t, addr))
	if m == nil {
		return ""
	}
	return m[1]
}

// A push to a cluster's primary succeeds only once its replica holds it:
// the client sees "replicated to n2" before git's summary, and when git
// push exits the replica's refs are the primary's and `repo where` shows
// it at the repository's generation, whether the push came to the primary
// or through the replica's node. With the replica's node down the push
// still succeeds, after sync_timeout, with a warning, and the metric
// counts it.
func TestClusterPushIsReplicatedBeforeItSucceeds(t *testing.T) {
	p := syncPair(t, "--sync-timeout", "2s")
	primary, replica := p.n1.RepoDir("acme", "web"), p.n2.RepoDir("acme", "web")
	for i, cl := range []*testworld.Client{p.via1, p.via2} {
		cl.Commit(p.work, fmt.Sprint("synchronous ", i))
		r := cl.Git(p.work, "push", cl.URL("acme/web"), "HEAD:main")
		if r.Code != 0 || !strings.Contains(r.Stderr, "remote: replicated to n2") || strings.Contains(r.Stderr, "warning") {
			t.Fatalf("push %d: %d\n%s", i, r.Code, r.Stderr)
		}
		if before, after := strings.Index(r.Stderr, "replicated to n2"), strings.Index(r.Stderr, "HEAD -> main"); after >= 0 && after < before {
			t.Errorf("push %d: the acknowledgement came after git's summary:\n%s", i, r.Stderr)
		}
		if got, want := refsOf(t, replica), refsOf(t, primary); got != want {
			t.Fatalf("push %d: right after it the replica holds\n%s\nthe primary\n%s", i, got, want)
		}
		w := wherePair(t, p.n1, "acme/web")
		if len(w.Replicas) != 1 || w.Replicas[0].Node != "n2" || w.Replicas[0].Generation != w.Generation {
			t.Fatalf("push %d: repo where %+v", i, w)
		}
	}
	if got := metricValue(t, p.n1.srv.MetricsAddr, "cpm_push_unreplicated_total"); got != "0" {
		t.Fatalf("cpm_push_unreplicated_total %q before any unreplicated push", got)
	}
	concurrentPushesReplicated(t, p)
	checkReceivePackRefused(t, p)

	p.n2.srv.Stop()
	p.via1.Commit(p.work, "while n2 is down")
	start := time.Now()
	r := p.via1.Git(p.work, "push", p.via1.URL("acme/web"), "HEAD:main")
	took := time.Since(start)
	if r.Code != 0 || !strings.Contains(r.Stderr, "remote: cpm: warning: not yet replicated to another node (sync_timeout 2s); it will be copied when a replica answers") {
		t.Fatalf("push with the replica down: %d\n%s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, "replicated to n2") || took > 6*time.Second {
		t.Fatalf("push with the replica down took %s:\n%s", took, r.Stderr)
	}
	if got := metricValue(t, p.n1.srv.MetricsAddr, "cpm_push_unreplicated_total"); got != "1" {
		t.Errorf("cpm_push_unreplicated_total %q after one unreplicated push", got)
	}
	if revParse(primary, "main") != revParse(p.work, "HEAD") {
		t.Error("the unreplicated push is not on the primary")
	}

	// Back up: the workers bring the replica up to date.
	restart(p.n2)
	waitFor(t, 30*time.Second, "n2 to catch up", func() bool { return refsOf(t, replica) == refsOf(t, primary) })
}

// With sync_replicas 0 a push is only queued, as before synchronous
// replication: no acknowledgement from a replica, no warning, and the
// workers copy it soon after.
func TestClusterSyncReplicasZeroOnlyQueues(t *testing.T) {
	p := syncPair(t, "--sync-replicas", "0")
	p.via1.Commit(p.work, "asynchronous")
	r := p.via1.Git(p.work, "push", p.via1.URL("acme/web"), "HEAD:main")
	if r.Code != 0 || strings.Contains(r.Stderr, "replicated") || strings.Contains(r.Stderr, "warning") {
		t.Fatalf("push: %d\n%s", r.Code, r.Stderr)
	}
	primary, replica := p.n1.RepoDir("acme", "web"), p.n2.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "n2 to follow", func() bool { return revParse(replica, "main") == revParse(primary, "main") })
	if got := metricValue(t, p.n1.srv.MetricsAddr, "cpm_push_unreplicated_total"); got != "0" {
		t.Errorf("cpm_push_unreplicated_total %q with sync_replicas 0", got)
	}
}

// nodeKeyOf is node n's replication key, as a client key.
func nodeKeyOf(t *testing.T, n *clusterNode) testworld.Key {
	t.Helper()
	k := testworld.Key{Path: filepath.Join(n.DataDir, "id_ed25519_replication")}
	out, err := exec.Command("ssh-keygen", "-lf", k.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	k.Fingerprint = strings.Fields(string(out))[1]
	return k
}

// checkReceivePackRefused: over ssh, cpm-peer receive-pack is refused to
// a user, to the primary under a stale epoch, and to a node that is not
// the primary; none of them changes the replica's refs.
func checkReceivePackRefused(t *testing.T, p pairWithWeb) {
	t.Helper()
	replica := p.n2.RepoDir("acme", "web")
	before := refsOf(t, replica)
	w := wherePair(t, p.n1, "acme/web")
	fp := strings.Repeat("0", 64)
	cmd := func(epoch int64) string {
		return fmt.Sprintf("cpm-peer receive-pack %d %d %s 'acme/web.git'", epoch, w.Generation, fp)
	}
	cases := []struct {
		name string
		cl   *testworld.Client
		cmd  string
		want string
	}{
		{"a user", p.via2, cmd(0), "cpm-peer commands are for approved neighbour nodes"},
		{"the primary under a stale epoch", p.n2.srv.Client(nodeKeyOf(t, p.n1)), cmd(7), "no longer the repository's primary"},
		{"a node that is not the primary", p.n1.srv.Client(nodeKeyOf(t, p.n2)), cmd(0), "n1 is its primary"},
	}
	for _, c := range cases {
		if r := c.cl.SSHInput("0000", nil, c.cmd); r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s ran %s: %d %q", c.name, c.cmd, r.Code, r.Stderr)
		}
	}
	if after := refsOf(t, replica); after != before {
		t.Errorf("refused writes changed the replica's refs:\n%s\nwas\n%s", after, before)
	}
}

// A push whose LFS objects were uploaded just before it is acknowledged
// only once the replica holds those objects too. The repository's lock
// is held meanwhile (as a repack would): the workers cannot sync, and the
// push does not wait for them. The fast path (cpm-peer receive-pack
// --pack) sends them first too.
func TestClusterSyncPushCarriesLFSObjects(t *testing.T) {
	p := syncPair(t)
	unlock, err := transfer.LockFile(filepath.Join(p.n1.DataDir, "locks", "acme", "web.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lfs1 := newLFSClient(t, p.via1)
	dir, r := lfs1.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone: %s", r.Stderr)
	}
	oid := lfs1.addLFSFile(dir, "asset.bin", 100_000)
	r = lfs1.git(dir, "push", "origin", "HEAD:main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "remote: replicated to n2") {
		t.Fatalf("LFS push: %d\n%s", r.Code, r.Stderr)
	}
	if fi, err := os.Stat(lfsObject(p.n2.RepoDir("acme", "web"), oid)); err != nil || fi.Size() != 100_000 {
		t.Fatalf("the LFS object on the replica right after the push: %v", err)
	}
	if got, want := refsOf(t, p.n2.RepoDir("acme", "web")), refsOf(t, p.n1.RepoDir("acme", "web")); got != want {
		t.Fatalf("refs on the replica\n%s\non the primary\n%s", got, want)
	}
	// n1 wrote into n2 before (the first push): the fast path, LFS
	// objects first all the same.
	waitFor(t, 5*time.Second, "the LFS push written the fast way", func() bool { return strings.Contains(p.n1.srv.Log(), `"via":["session"]`) })
}

// concurrentPushesReplicated: four pushes at once, to four branches
// through both nodes, are each acknowledged by the replica, which holds
// all four when the last one returns.
func concurrentPushesReplicated(t *testing.T, p pairWithWeb) {
	t.Helper()
	errs := make(chan string, 4)
	for i := range 4 {
		cl := []*testworld.Client{p.via1, p.via2}[i%2]
		work := filepath.Join(p.n1.Root, fmt.Sprint("work-", i))
		cl.MustGit("", "clone", "-q", cl.URL("acme/web"), work)
		cl.Commit(work, fmt.Sprint("concurrent ", i))
		go func() {
			r := cl.Git(work, "push", "origin", fmt.Sprintf("HEAD:refs/heads/b%d", i))
			if r.Code != 0 || !strings.Contains(r.Stderr, "remote: replicated to n2") {
				errs <- fmt.Sprintf("push %d: %d\n%s", i, r.Code, r.Stderr)
				return
			}
			errs <- ""
		}()
	}
	for range 4 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	if got, want := refsOf(t, p.n2.RepoDir("acme", "web")), refsOf(t, p.n1.RepoDir("acme", "web")); got != want {
		t.Fatalf("after concurrent pushes the replica holds\n%s\nthe primary\n%s", got, want)
	}
}
