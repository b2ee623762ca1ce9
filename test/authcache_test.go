package test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// revokeBound is how long a revoking cpm-admin command may take on
// PostgreSQL: the nodes' confirm window (2 s) and its margin (0.5 s),
// with room for starting the command on a loaded machine.
const revokeBound = 5 * time.Second

// authCacheCase is a world to revoke things in: alice owns acme, bob is
// a member, carol has a grant on acme/web; each reads it through every
// client of hers.
type authCacheCase struct {
	t       *testing.T
	admin   func(args ...string) string
	clients func(testworld.Key) []*testworld.Client
	metrics []string // each serving node's metrics address
}

func (c authCacheCase) reads(k testworld.Key) (ok, refused int) {
	for _, cl := range c.clients(k) {
		if r := cl.Git("", "ls-remote", cl.URL("acme/web")); r.Code == 0 {
			ok++
		} else {
			refused++
		}
	}
	return ok, refused
}

// timedAdmin runs a command that grants or takes away access and checks it returns within the bound.
func (c authCacheCase) timedAdmin(args ...string) time.Duration {
	start := time.Now()
	c.admin(args...)
	took := time.Since(start)
	if took > revokeBound {
		c.t.Errorf("cpm-admin %s took %v, bound %v", strings.Join(args, " "), took, revokeBound)
	}
	return took
}

// run: each key read twice on every node (the second from the cache,
// which the hit counters show), then its access taken away with
// cpm-admin: the very next read on every node is refused.
func (c authCacheCase) run(w *testworld.World) {
	t := c.t
	alice, bob, carol := w.NewKey("alice"), w.NewKey("bob"), w.NewKey("carol")
	c.admin("user", "add", "alice", "--key", alice.PubPath)
	c.admin("user", "add", "bob", "--key", bob.PubPath)
	c.admin("user", "add", "carol", "--key", carol.PubPath)
	c.admin("org", "create", "acme", "--owner", "alice")
	c.admin("repo", "create", "acme/web")
	c.admin("org", "add-member", "acme", "bob", "--role", "member")
	c.admin("repo", "grant", "acme/web", "carol", "read")
	for _, addr := range c.metrics {
		waitFor(t, 10*time.Second, "the cache current on "+addr, func() bool { return metricValue(t, addr, "cpm_auth_cache_current") == "1" })
	}
	for _, k := range []testworld.Key{alice, bob, carol} {
		for range 2 {
			if _, refused := c.reads(k); refused != 0 {
				t.Fatalf("%s refused before any revocation", k.PubPath)
			}
		}
	}
	for _, addr := range c.metrics {
		if hits, _ := strconv.ParseFloat(metricValue(t, addr, "cpm_auth_cache_hits_total"), 64); hits < 1 {
			t.Errorf("node %s answered nothing from its cache (hits %v): the test would prove nothing", addr, hits)
		}
	}
	for _, step := range []struct {
		who  testworld.Key
		args []string
	}{
		{alice, []string{"key", "remove", alice.Fingerprint}},
		{bob, []string{"org", "remove-member", "acme", "bob"}},
		{carol, []string{"repo", "revoke", "acme/web", "carol"}},
	} {
		took := c.timedAdmin(step.args...)
		if ok, _ := c.reads(step.who); ok != 0 {
			t.Errorf("after cpm-admin %s (%v): still read on %d node(s)", strings.Join(step.args, " "), took, ok)
		}
		t.Logf("cpm-admin %s: %v", strings.Join(step.args, " "), took)
	}
}

// TestAuthCacheNeverServesRevoked: a lone cpm-shell serve on PostgreSQL
// caches who a key is and what a user may do; a key removed, a member
// removed, a grant revoked with cpm-admin is refused on the very next
// connection.
func TestAuthCacheNeverServesRevoked(t *testing.T) {
	w := testworld.New(t, bin.OnDatabase(pg.Database))
	srv := w.StartServer()
	authCacheCase{t: t, admin: w.MustAdmin, metrics: []string{srv.MetricsAddr},
		clients: func(k testworld.Key) []*testworld.Client { return []*testworld.Client{srv.Client(k)} }}.run(w)
}

// TestClusterAuthCacheNeverServesRevoked: the same on both nodes of a
// cluster; then a node cut off the database stops answering from its
// cache within the confirm window (fails closed), and a revocation
// returns within its bound although that node never acknowledges it.
func TestClusterAuthCacheNeverServesRevoked(t *testing.T) {
	c := testworld.NewClusterWith(t, bin.OnDatabase(pg.Database), 2, testworld.ClusterOptions{DBLinks: true})
	n1, n2 := c.Node(1), c.Node(2)
	cs := authCacheCase{t: t, admin: func(args ...string) string { return c.MustAdmin(1, args...) },
		metrics: []string{n1.Server.MetricsAddr, n2.Server.MetricsAddr},
		clients: func(k testworld.Key) []*testworld.Client { return []*testworld.Client{c.Client(1, k), c.Client(2, k)} }}
	cs.run(n1.World)

	dave, erin := n1.NewKey("dave"), n1.NewKey("erin")
	c.MustAdmin(1, "user", "add", "dave", "--key", dave.PubPath)
	c.MustAdmin(1, "user", "add", "erin", "--key", erin.PubPath)
	c.MustAdmin(1, "org", "add-member", "acme", "dave", "--role", "member")
	c.MustAdmin(1, "org", "add-member", "acme", "erin", "--role", "member")
	viaDave, viaErin := c.Client(2, dave), c.Client(2, erin)
	for range 2 { // cached on node 2
		for _, cl := range []*testworld.Client{viaDave, viaErin} {
			if r := cl.Git("", "ls-remote", cl.URL("acme/web")); r.Code != 0 {
				t.Fatalf("read through node 2: %s", r.Stderr)
			}
		}
		if r := viaErin.SSH(nil, "whoami"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "erin" {
			t.Fatalf("whoami through node 2: %q %s", r.Stdout, r.Stderr)
		}
	}
	c.CutDatabase(2)
	took := cs.timedAdmin("org", "remove-member", "acme", "dave")
	t.Logf("remove-member with node 2 cut off: %v", took)
	if r := viaDave.Git("", "ls-remote", viaDave.URL("acme/web")); r.Code == 0 {
		t.Errorf("node 2, cut off the database, read for a removed member from its cache")
	}
	// Not from the cache at all: erin, still a member, is not let in
	// while node 2 cannot ask the database. whoami reads nothing but who
	// the key is (a read, or a push, also asks where the repository is).
	if r := viaErin.SSH(nil, "whoami"); r.Code == 0 {
		t.Errorf("node 2, cut off the database, answered whoami from its cache after the confirm window: %q", r.Stdout)
	}
	if v := metricValue(t, n2.Server.MetricsAddr, "cpm_auth_cache_current"); v != "0" {
		t.Errorf("cpm_auth_cache_current on node 2 cut off: %v", v)
	}
	c.RestoreDatabase(2)
	waitFor(t, 30*time.Second, "node 2 to serve erin again", func() bool {
		return viaErin.Git("", "ls-remote", viaErin.URL("acme/web")).Code == 0
	})
	waitFor(t, 10*time.Second, "node 2's cache current again", func() bool {
		return metricValue(t, n2.Server.MetricsAddr, "cpm_auth_cache_current") == "1"
	})
}
