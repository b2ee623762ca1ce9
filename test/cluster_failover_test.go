package test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// epochOf is the epoch `repo where --json` shows for repo on node i.
func epochOf(t *testing.T, c *testworld.Cluster, i int, repo string) (string, int64) {
	t.Helper()
	var w struct {
		Primary string `json:"primary"`
		Epoch   int64  `json:"epoch"`
	}
	out := c.MustAdmin(i, "repo", "where", repo, "--json")
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("repo where %s --json: %v\n%s", repo, err, out)
	}
	return w.Primary, w.Epoch
}

// TestClusterFailsOverWhenThePrimaryDies: three nodes with the default
// lease (10 s); the primary of acme/web is killed (SIGKILL, no goodbye);
// within 15 s a push through another node succeeds, on a new primary
// under the next epoch, and one node logged the election.
func TestClusterFailsOverWhenThePrimaryDies(t *testing.T) {
	c := testworld.NewCluster(t, bin.OnDatabase(pg.Database), 3)
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	c.MustAdmin(1, "repo", "create", "acme/web")
	via2 := c.Client(2, alice)
	work := filepath.Join(t.TempDir(), "work")
	via2.MustGit("", "init", "-q", "-b", "main", work)
	via2.Commit(work, "first")
	via2.MustGit(work, "push", "-q", via2.URL("acme/web"), "main")
	waitConverged(t, c, []string{"acme/web"})
	before, epoch := epochOf(t, c, 2, "acme/web")
	if before != "node-1" {
		t.Fatalf("primary %s, want node-1", before)
	}

	killed := time.Now()
	c.KillNode(1)
	head := via2.Commit(work, "after the kill")
	var took time.Duration
	var last string
	for {
		r := via2.Git(work, "push", "-q", via2.URL("acme/web"), "main")
		if r.Code == 0 {
			took = time.Since(killed)
			break
		}
		last = r.Stderr
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no push through node 2 within 30 s of the kill; the last said:\n%s\nnode 2's log:\n%s", last, c.Node(2).Server.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("a push succeeded %s after the primary was killed", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the first push after the kill succeeded after %s, want at most 15 s", took)
	}
	primary, now := epochOf(t, c, 2, "acme/web")
	if primary == "node-1" || primary == "" || now != epoch+1 {
		t.Errorf("after the failover: primary %q epoch %d, want another node under epoch %d", primary, now, epoch+1)
	}
	if got := headOf(t, c.Client(3, alice), "acme/web"); got != head {
		t.Errorf("a clone through node 3: main at %s, want the push's %s", got, head)
	}
	elections := 0
	for _, i := range []int{2, 3} {
		for _, l := range strings.Split(c.Node(i).Server.Log(), "\n") {
			if strings.Contains(l, `"message":"election"`) && strings.Contains(l, `"from":"node-1"`) &&
				strings.Contains(l, `"to":"`+primary+`"`) && strings.Contains(l, fmt.Sprintf(`"epoch":%d`, epoch+1)) {
				elections++
			}
		}
	}
	if elections != 1 {
		t.Errorf("%d election events for acme/web, want 1", elections)
	}
}

// TestClusterNodeWithoutItsLeaseRefuses: a node that cannot renew its
// lease (its row held locked in the database: its renewals hang) refuses
// every user session (ssh, git://, OpenSSH's forced command) with cpm's words, though the primary it would
// relay to is fine; once it renews it serves again. The other node is
// not affected.
func TestClusterNodeWithoutItsLeaseRefuses(t *testing.T) {
	n1, n2, database := newClusterPairServing(t, true, "--lease", "3s")
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme", "--owner", "alice")
	via1, via2 := n1.srv.Client(alice), n2.srv.Client(alice)
	work := filepath.Join(t.TempDir(), "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/web"), "main")
	n1.MustAdmin("repo", "set", "acme/web", "--public")

	db, err := sql.Open("pgx", database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`SELECT 1 FROM servers WHERE name = 'n2' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	const want = "cpm: this node lost its lease; try again\n"
	var r testworld.Result
	waitFor(t, 15*time.Second, "n2 fenced", func() bool {
		r = via2.SSH(nil, "git-receive-pack acme/web")
		return r.Code != 0 && r.Stderr == want
	})
	via2.Commit(work, "through n2")
	if r := via2.Git(work, "push", "-q", via2.URL("acme/web"), "main"); r.Code == 0 || !strings.Contains(r.Stderr, strings.TrimSpace(want)) {
		t.Errorf("a push through the fenced n2: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := via2.SSH(nil, "git-upload-pack acme/web"); r.Code == 0 || r.Stderr != want {
		t.Errorf("a read through the fenced n2: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// OpenSSH's forced command on n2 keeps no lease: the database says,
	// once the lease ran out there too (the keeper gives it up sooner).
	waitFor(t, 10*time.Second, "the forced command on n2 fenced", func() bool {
		forced := exec.Command(bin.Shell, "key-1", "--data-dir", n2.DataDir)
		forced.Env = append(testworld.Env(), "SSH_ORIGINAL_COMMAND=git-upload-pack 'acme/web'", "SSH_CONNECTION=127.0.0.1 50000 127.0.0.3 22")
		var stderr strings.Builder
		forced.Stderr = &stderr
		return forced.Run() != nil && stderr.String() == want
	})
	if out, err := exec.Command("git", "ls-remote", "git://"+n2.srv.GitAddr+"/acme/web.git").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "this node lost its lease; try again") {
		t.Errorf("git:// through the fenced n2: %v %s", err, out)
	}
	if r := via1.Git(work, "push", "-q", via1.URL("acme/web"), "main"); r.Code != 0 {
		t.Errorf("a push through n1, whose lease holds: %s", r.Stderr)
	}
	tx.Rollback()
	waitFor(t, 15*time.Second, "n2 serving again", func() bool {
		return via2.Git(work, "ls-remote", via2.URL("acme/web")).Code == 0
	})
	if !strings.Contains(n2.srv.Log(), "lease lost") {
		t.Errorf("n2 did not log that it lost its lease:\n%s", n2.srv.Log())
	}
}
