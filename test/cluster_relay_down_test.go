package test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterRelayToAPrimaryThatIsDown: with the repository's primary
// stopped, a session that goes there through the other node gets cpm's
// one line and nothing of ssh's (no internal address, no "Connection
// refused"), for a read and for a push; the node that relayed logs why.
func TestClusterRelayToAPrimaryThatIsDown(t *testing.T) {
	n1, n2, database := newClusterPair(t)
	alice := n1.NewKey("alice")
	n1.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	via1, via2 := n1.srv.Client(alice), n2.srv.Client(alice)
	work := filepath.Join(n1.Root, "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/web"), "main")
	lag(t, database, "n2", "acme", "web") // a read through n2 goes to n1
	n1.srv.Stop()

	const want = "cpm: acme/web: its primary node is unreachable; try again later\n"
	for _, command := range []string{"git-upload-pack acme/web", "git-receive-pack acme/web"} {
		r := via2.SSH(nil, command)
		if r.Code == 0 || r.Stderr != want {
			t.Errorf("%s through n2, n1 down: exit %d, stderr %q, want %q", command, r.Code, r.Stderr, want)
		}
	}
	if log := n2.srv.Log(); !strings.Contains(log, "Connection refused") {
		t.Errorf("n2's log does not say why the relay failed:\n%s", log)
	}
}
