package test

import (
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterRelayedWriteGoesOnOnce: a write relayed to a node that is
// not (or no longer) the repository's primary goes on to the primary
// once (hops 1 → 2); a write that used up its hops is refused. And
// cpm-peer upload-pack, the primary's read of another node's own copy,
// is for the primary alone.
func TestClusterRelayedWriteGoesOnOnce(t *testing.T) {
	p := newPairWithWeb(t) // acme/web: primary n1
	replica := p.n2.RepoDir("acme", "web")
	waitFor(t, 30*time.Second, "n2 to hold acme/web", func() bool { return revParse(replica, "main") != "" })
	asN1 := p.n2.srv.Client(nodeKeyOf(t, p.n1)) // n1 speaking to n2
	for _, c := range []struct {
		hops string
		ok   bool
	}{{"", true}, {`,"hops":1`, true}, {`,"hops":2`, false}} {
		header := `{"command":"git-receive-pack acme/web","key":"` + p.alice.Fingerprint + `"` + c.hops + "}\n"
		r := asN1.SSHInput(header+"0000", nil, "cpm-peer relay")
		if (r.Code == 0) != c.ok || (!c.ok && !strings.Contains(r.Stderr, "no longer the repository's primary")) {
			t.Errorf("a push relayed to n2 with%s: exit %d %q", c.hops, r.Code, r.Stderr)
		}
	}
	if log := p.n1.srv.Log(); strings.Count(log, `"command":"git-receive-pack","repo":"acme/web"`) < 3 {
		t.Errorf("n1 did not serve the pushes n2 relayed on:\n%s", log)
	}

	// upload-pack of n2's own copy: the primary n1 may; n2 of n1's
	// copy (n1 is the primary), a user, may not.
	if r := asN1.SSHInput("0000", nil, "cpm-peer upload-pack acme/web"); r.Code != 0 || !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Errorf("the primary's cpm-peer upload-pack on n2: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	asN2 := p.n1.srv.Client(nodeKeyOf(t, p.n2))
	for name, cl := range map[string]*testworld.Client{"n2 on the primary": asN2, "a user": p.via2} {
		if r := cl.SSHInput("0000", nil, "cpm-peer upload-pack acme/web"); r.Code == 0 || strings.Contains(r.Stdout, "refs/heads/main") {
			t.Errorf("%s ran cpm-peer upload-pack: exit %d %q", name, r.Code, r.Stderr)
		}
	}
}
