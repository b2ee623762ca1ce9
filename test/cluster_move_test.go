package test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterMoveDrainRemove: failover by hand. repo move hands a
// repository to another node while a client pushes through a third in a
// loop, and no push fails; node drain moves every primary away and node
// list says draining; node remove is refused while the node is a
// primary and accepted once it is drained.
func TestClusterMoveDrainRemove(t *testing.T) {
	c := testworld.NewCluster(t, bin.OnDatabase(pg.Database), 3)
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	c.MustAdmin(1, "repo", "create", "acme/web") // primary node-1
	via2 := c.Client(2, alice)
	work := t.TempDir()
	via2.MustGit("", "init", "-q", "-b", "main", work)
	via2.Commit(work, "first")
	via2.MustGit(work, "push", "-q", via2.URL("acme/web"), "main")

	last, pushed, failed := pushLoop(t, via2, work, func() {
		out := c.MustAdmin(1, "repo", "move", "acme/web", "--to", "node-3")
		if !strings.Contains(out, "moved acme/web to node-3") {
			t.Errorf("repo move: %s", out)
		}
	})
	if len(failed) > 0 || pushed < 4 {
		t.Fatalf("%d pushes during the move, %d failed: %v", pushed, len(failed), failed)
	}
	var w whereRow
	mustJSON(t, c.MustAdmin(2, "repo", "where", "acme/web", "--json"), &w)
	if w.Primary != "node-3" || w.Epoch == nil || *w.Epoch != 1 {
		t.Fatalf("after the move: %+v", w)
	}
	if got := revParse(c.Node(3).RepoDir("acme", "web"), "main"); got != last {
		t.Fatalf("node-3 (the new primary) has main at %s, the last push was %s", got, last)
	}
	if out := c.MustAdmin(1, "repo", "move", "acme/web", "--to", "node-3"); !strings.Contains(out, "already") {
		t.Errorf("a second move: %s", out)
	}

	// node-3 is primary of acme/web: it may not go before it is drained.
	if r := c.Admin(1, "node", "remove", "node-3"); r.Code == 0 || !strings.Contains(r.Stderr, "drain it first") {
		t.Fatalf("remove a primary: exit %d %s", r.Code, r.Stderr)
	}
	_, pushed, failed = pushLoop(t, via2, work, func() {
		out := c.MustAdmin(1, "node", "drain", "node-3")
		if !strings.Contains(out, "moved acme/web -> node-") {
			t.Errorf("node drain: %s", out)
		}
	})
	if len(failed) > 0 {
		t.Fatalf("%d pushes during the drain, %d failed: %v", pushed, len(failed), failed)
	}
	for _, n := range nodeList(t, c, 1) {
		if n.Name == "node-3" && (n.State != "draining" || n.Primaries != 0) {
			t.Fatalf("node-3 after the drain: %+v", n)
		}
	}
	// node-3 may hold the last pushes as the only replica until the
	// other replica syncs: remove is refused until then.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		r := c.Admin(1, "node", "remove", "node-3")
		if r.Code == 0 {
			break
		}
		if !strings.Contains(r.Stderr, "only replica copy") || time.Now().After(deadline) {
			t.Fatalf("node remove node-3: exit %d %s", r.Code, r.Stderr)
		}
	}
	if rows := nodeList(t, c, 1); len(rows) != 2 {
		t.Fatalf("node list after remove: %+v", rows)
	}
}

// pushLoop pushes through client in a loop while during runs, and a few
// times after; it returns the last commit pushed, how many pushes ran
// and the errors of those that failed.
func pushLoop(t *testing.T, client *testworld.Client, work string, during func()) (string, int, []string) {
	t.Helper()
	var (
		mu     sync.Mutex
		failed []string
		last   string
		n      int
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		after := -1
		for i := 0; after != 0; i++ {
			select {
			case <-stop:
				if after < 0 {
					after = 2
				}
			default:
			}
			if after > 0 {
				after--
			}
			head := client.Commit(work, fmt.Sprint("loop ", i, " ", time.Now().UnixNano()))
			r := client.Git(work, "push", "-q", client.URL("acme/web"), "HEAD:main")
			mu.Lock()
			n++
			if r.Code != 0 {
				failed = append(failed, r.Stderr)
				// Keep going from what the server has.
				client.Git(work, "pull", "-q", "--rebase", client.URL("acme/web"), "main")
			} else {
				last = head
			}
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	during()
	close(stop)
	<-done
	return last, n, failed
}
