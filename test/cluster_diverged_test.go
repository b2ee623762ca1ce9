package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterOldPrimaryReturns: n1, acme/web's primary, dies holding a
// commit on main that n2 lacks (a push whose client was warned it was
// not yet replicated). n2 takes over; when n1 comes back, n2 keeps n1's
// main as refs/cpm/diverged/1/refs/heads/main (a branch n1 held that n2
// contains is not kept), doctor and repo where say so, and n1's copy is
// then n2's.
func TestClusterOldPrimaryReturns(t *testing.T) {
	n1, n2, _ := newClusterPairServing(t, false, "--lease", "3s")
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme", "--owner", "alice")
	via1, via2 := n1.srv.Client(alice), n2.srv.Client(alice)
	work := t.TempDir()
	via1.MustGit("", "init", "-q", "-b", "main", work)
	via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/web"), "main", "main:old")
	old, replica := n1.RepoDir("acme", "web"), n2.RepoDir("acme", "web")
	// Held means recorded: the election counts the generation a replica's
	// job says it holds (recorded just after the refs land).
	waitFor(t, 30*time.Second, "n2 to hold the push", func() bool {
		var w whereRow
		mustJSON(t, n1.MustAdmin("repo", "where", "acme/web", "--json"), &w)
		return revParse(replica, "old") == revParse(old, "old") && len(w.Replicas) == 1 && w.Replicas[0].Generation == w.Generation
	})

	// n1 dies; what it wrote last never left its disk.
	n1.srv.Signal(syscall.SIGKILL)
	if ok, _ := n1.srv.Wait(10 * time.Second); !ok {
		t.Fatal("n1 did not die")
	}
	lost := gitIn(t, old, "-c", "user.name=n1", "-c", "user.email=n1@example.org", "commit-tree", "-p", "main", "-m", "acknowledged with a warning only", "main^{tree}")
	gitIn(t, old, "update-ref", "refs/heads/main", lost)

	waitFor(t, 30*time.Second, "n2 to become the primary", func() bool {
		return strings.Contains(n2.MustAdmin("repo", "where", "acme/web"), "primary n2")
	})
	head := via2.Commit(work, "on the new primary")
	via2.MustGit(work, "push", "-q", via2.URL("acme/web"), "main")

	n1.srv = n1.StartServer("--listen", n1.addr, "--git-listen", "", "--lease", "3s")
	const kept = "refs/cpm/diverged/1/refs/heads/main"
	waitFor(t, 60*time.Second, "n2 to keep n1's main", func() bool { return revParse(replica, kept) == lost })
	if got := revParse(replica, "refs/cpm/diverged/1/refs/heads/old"); got != "" {
		t.Errorf("n1's old, which n2 contains, was kept too: %s", got)
	}
	if revParse(replica, "main") != head {
		t.Errorf("n2's main moved: %s, want %s", revParse(replica, "main"), head)
	}
	waitFor(t, 60*time.Second, "n1's copy to be n2's", func() bool {
		return revParse(old, "main") == head && revParse(old, kept) == lost
	})
	if out, _ := exec.Command("git", "-C", old, "fsck", "--no-progress").CombinedOutput(); strings.Contains(string(out), "error") {
		t.Errorf("fsck of n1's copy: %s", out)
	}

	var w struct {
		Diverged []struct {
			Epoch  int64  `json:"epoch"`
			Ref    string `json:"ref"`
			Object string `json:"object"`
			Node   string `json:"node"`
		} `json:"diverged"`
	}
	if err := json.Unmarshal([]byte(n2.MustAdmin("repo", "where", "acme/web", "--json")), &w); err != nil {
		t.Fatal(err)
	}
	if len(w.Diverged) != 1 || w.Diverged[0].Ref != "refs/heads/main" || w.Diverged[0].Object != lost || w.Diverged[0].Node != "n1" || w.Diverged[0].Epoch != 1 {
		t.Errorf("repo where's diverged: %+v", w.Diverged)
	}
	r := n2.Admin("", "doctor")
	if r.Code == 0 || !strings.Contains(r.Stdout, "acme/web: refs/heads/main kept as "+kept) {
		t.Errorf("doctor on n2 (exit %d):\n%s", r.Code, r.Stdout)
	}
	// Dealt with: the kept ref deleted on the primary, doctor is quiet.
	gitIn(t, replica, "update-ref", "-d", kept)
	if r := n2.Admin("", "doctor"); strings.Contains(r.Stdout, kept) {
		t.Errorf("doctor after the kept ref was deleted:\n%s", r.Stdout)
	}
}
