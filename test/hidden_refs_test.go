package test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterHidesCPMRefs: refs under refs/cpm/ (diverged writes kept
// from an old primary) are cpm's own: no user sees them (ls-remote on
// the primary, relayed through another node), fetches them or pushes
// them; replication between the nodes still carries them.
func TestClusterHidesCPMRefs(t *testing.T) {
	p := newPairWithWeb(t)
	primary := p.n1.RepoDir("acme", "web")
	head := revParse(primary, "main")
	const saved = "refs/cpm/diverged/1/refs/heads/main"
	if out, err := exec.Command("git", "-C", primary, "update-ref", saved, head).CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v %s", err, out)
	}
	for via, cl := range map[string]*testworld.Client{"n1": p.via1, "n2 (relayed)": p.via2} {
		r := cl.Git("", "ls-remote", cl.URL("acme/web"))
		if r.Code != 0 || !strings.Contains(r.Stdout, "refs/heads/main") || strings.Contains(r.Stdout, "refs/cpm/") {
			t.Errorf("ls-remote through %s (exit %d): %s %s", via, r.Code, r.Stdout, r.Stderr)
		}
		if r := cl.Git(p.work, "fetch", cl.URL("acme/web"), saved+":refs/x"); r.Code == 0 {
			t.Errorf("fetch of %s through %s succeeded", saved, via)
		}
		if r := cl.Git(p.work, "push", cl.URL("acme/web"), "main:refs/cpm/diverged/9/refs/heads/evil"); r.Code == 0 {
			t.Errorf("push to refs/cpm/ through %s succeeded: %s", via, r.Stderr)
		}
	}
	if out, _ := exec.Command("git", "-C", primary, "for-each-ref", "refs/cpm/diverged/9").CombinedOutput(); len(out) != 0 {
		t.Errorf("a user's push wrote under refs/cpm/: %s", out)
	}
	// The next sync carries the primary's refs/cpm/ to the replica.
	p.via1.Commit(p.work, "second")
	p.via1.MustGit(p.work, "push", "-q", p.via1.URL("acme/web"), "main")
	replica := p.n2.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "the replica to hold "+saved, func() bool { return revParse(replica, saved) == head })
}
