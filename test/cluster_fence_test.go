package test

import (
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestNodeCutOffTheDatabaseSaysItIsFenced: a node whose database link is
// cut cannot look a key up, and has lost its lease for that very reason;
// a user who pushes or clones there directly reads the fencing words, not
// "Permission denied" (which would send them after their key). Once the
// link is back the node serves again.
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
	client.Commit(work, "two")
	if r := client.Git(work, "push", client.URL("acme/web"), "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		t.Errorf("push to a node cut off the database: exit %d, want %q:\n%s", r.Code, fencedWords, r.Stderr)
	}
	if _, r := client.Clone("acme/web"); r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		t.Errorf("clone from a node cut off the database: exit %d, want %q:\n%s", r.Code, fencedWords, r.Stderr)
	}

	c.RestoreDatabase(2)
	waitFor(t, 30*time.Second, "node 2 to serve again", func() bool {
		return client.Git(work, "push", "-q", client.URL("acme/web"), "HEAD:main").Code == 0
	})
}
