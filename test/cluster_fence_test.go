package test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestNodeCutOffTheDatabaseSaysItIsFenced: a node whose database link is
// cut cannot look a key up, and has lost its lease for that very reason;
// a user who pushes or clones there directly reads the fencing words, not
// "Permission denied" (which would send them after their key), and the
// balancer takes the node out of its rotation. Once the link is back the
// node serves again.
func TestNodeCutOffTheDatabaseSaysItIsFenced(t *testing.T) {
	lease := 3 * time.Second
	c := testworld.NewClusterWith(t, bin.OnDatabase(pg.Database), 2,
		testworld.ClusterOptions{DBLinks: true, Flags: []string{"--lease", lease.String()}})
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	c.MustAdmin(1, "repo", "create", "acme/web")
	client := c.Client(2, alice)
	work := t.TempDir()
	client.MustGit("", "init", "-q", "-b", "main", work)
	client.Commit(work, "one")
	client.MustGit(work, "push", "-q", client.URL("acme/web"), "HEAD:main")

	c.CutDatabase(2)
	time.Sleep(lease + time.Second)
	// HAProxy's health check (the shipped configuration) sees the node
	// say it is fenced and sends nobody there.
	// HAProxy checks every 2 s and takes a node out after 2 failures.
	waitFor(t, 5*time.Second, "HAProxy to take node 2 out", func() bool { return c.Balancer().Up() == 1 })
	client.Commit(work, "two")
	if r := client.Git(work, "push", client.URL("acme/web"), "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		t.Errorf("push to a node cut off the database: exit %d, want %q:\n%s", r.Code, fencedWords, r.Stderr)
	}
	if _, r := client.Clone("acme/web"); r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		t.Errorf("clone from a node cut off the database: exit %d, want %q:\n%s", r.Code, fencedWords, r.Stderr)
	}

	// A connection that another node's ssh multiplexes (ControlMaster)
	// is let in during the cut only to be told, then closed: once the
	// lease holds again, the next session over that control path works.
	mux := []string{"-o", "ControlMaster=auto", "-o", "ControlPersist=60",
		"-o", "ControlPath=" + filepath.Join(t.TempDir(), "mux")}
	if r := client.SSH(mux, "whoami"); r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		t.Errorf("whoami over a multiplexed connection during the cut: exit %d, want %q:\n%s", r.Code, fencedWords, r.Stderr)
	}
	defer client.SSH(append(mux, "-O", "exit"))

	c.RestoreDatabase(2)
	waitFor(t, 30*time.Second, "node 2 to serve again", func() bool {
		return client.Git(work, "push", "-q", client.URL("acme/web"), "HEAD:main").Code == 0
	})
	c.Balancer().WaitUp(2)
	if r := client.SSH(mux, "whoami"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "alice" {
		t.Errorf("whoami over the same control path once the lease holds: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
}
