package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterRevocationHoldsOnEveryNode: a certificate revoked with `ca
// revoke` on n1 is refused the moment the command returns, on n2 (where
// the user cloned) and on n1, and also where n2 would relay the session
// to the primary; another certificate of the same authority still works;
// n2's own DATA/revoked_keys.krl, which sshd reads, follows soon after.
func TestClusterRevocationHoldsOnEveryNode(t *testing.T) {
	n1, n2, database := newClusterPair(t)
	dir := t.TempDir()
	ca := newCA(t, dir, "corp-ca")
	n1.MustAdmin("ca", "add", "corp", ca+".pub")
	n1.MustAdmin("user", "add", "alice")
	n1.MustAdmin("org", "create", "acme")
	n1.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	stolen := certKey(t, dir, "stolen", ca, "stolen-laptop", "9", "-n", "alice")
	other := certKey(t, dir, "other", ca, "desktop", "10", "-n", "alice")

	// Pushed through n1 (its primary), cloned through n2.
	via1 := n1.srv.Client(stolen)
	work := filepath.Join(n1.Root, "work")
	via1.MustGit("", "init", "-q", "-b", "main", work)
	via1.Commit(work, "first")
	via1.MustGit(work, "push", "-q", via1.URL("acme/web"), "main")
	via2 := n2.srv.Client(stolen)
	if _, r := via2.Clone("acme/web"); r.Code != 0 {
		t.Fatalf("clone through n2 with the certificate: %s", r.Stderr)
	}

	spec := filepath.Join(dir, "krl.spec")
	os.WriteFile(spec, []byte("serial: 9\n"), 0o644)
	krl := filepath.Join(dir, "revoked.krl")
	if out, err := exec.Command("ssh-keygen", "-q", "-k", "-f", krl, "-s", ca+".pub", spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v %s", err, out)
	}
	n1.MustAdmin("ca", "revoke", krl)
	for name, c := range map[string]*testworld.Client{"n2": via2, "n1": via1} {
		if r := c.Git("", "ls-remote", c.URL("acme/web")); r.Code == 0 {
			t.Errorf("the revoked certificate still reads through %s", name)
		}
	}
	// n2's copy lagging: the session would be relayed to n1.
	lag(t, database, "n2", "acme", "web")
	if r := via2.Git("", "ls-remote", via2.URL("acme/web")); r.Code == 0 {
		t.Error("the revoked certificate still reads through n2's relay")
	}
	for name, n := range map[string]*clusterNode{"n1": n1, "n2": n2} {
		c := n.srv.Client(other)
		if r := c.Git("", "ls-remote", c.URL("acme/web")); r.Code != 0 {
			t.Errorf("revoking serial 9 refused serial 10 on %s: %s", name, r.Stderr)
		}
	}
	want, _ := os.ReadFile(krl)
	waitFor(t, 10*time.Second, "n2's revoked_keys.krl", func() bool {
		got, err := os.ReadFile(filepath.Join(n2.DataDir, "revoked_keys.krl"))
		return err == nil && bytes.Equal(got, want)
	})
}
