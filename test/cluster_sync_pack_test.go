package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A primary that wrote into a replica before writes the next push there
// the fast way (ref updates and one pack over a replication session,
// "via":["session"] in its log);
// when the replica is not where it left it (here: main moved back and a
// stray branch, as if someone wrote there), that write fails, the push
// still waits for send-pack, which negotiates, and the replica ends equal
// to the primary before git push exits; the push after is fast again.
func TestClusterSyncPushFastPathAndFallback(t *testing.T) {
	p := syncPair(t)
	st := openStore(t, p.database)
	primary, replica := p.n1.RepoDir("acme", "web"), p.n2.RepoDir("acme", "web")
	count := func(via string) int { return strings.Count(p.n1.srv.Log(), `"via":["`+via+`"]`) }
	push := func(what, via string) {
		t.Helper()
		waitIdle(t, st)
		before := count(via)
		p.via1.Commit(p.work, what)
		r := p.via1.Git(p.work, "push", p.via1.URL("acme/web"), "HEAD:main")
		if r.Code != 0 || !strings.Contains(r.Stderr, "remote: replicated to n2") || strings.Contains(r.Stderr, "warning") {
			t.Fatalf("%s: %d\n%s", what, r.Code, r.Stderr)
		}
		if got, want := refsOf(t, replica), refsOf(t, primary); got != want {
			t.Fatalf("%s: right after it the replica holds\n%s\nthe primary\n%s", what, got, want)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("%s written via %s", what, via), func() bool { return count(via) > before })
	}
	push("second", "session")
	push("third", "session")

	waitIdle(t, st)
	for _, args := range [][]string{{"update-ref", "refs/heads/main", "refs/heads/main~1"}, {"update-ref", "refs/heads/stray", "refs/heads/main"}} {
		if out, err := exec.Command("git", append([]string{"-C", replica}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	push("behind", "send-pack")
	push("after", "session")
	if out, err := exec.Command("git", "-C", replica, "fsck", "--strict", "--no-dangling").CombinedOutput(); err != nil {
		t.Fatalf("git fsck on the replica: %v\n%s", err, out)
	}
}
