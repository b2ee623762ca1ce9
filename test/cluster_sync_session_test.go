package test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cpm/internal/replstream"
	"cpm/internal/testworld"
)

// A primary writes its pushes into a replica node over long-lived
// replication sessions (cpm-peer receive-pack --serve): one session
// takes push after push ("via":["session"], the replica's log one
// "replica write" per push and no session ended meanwhile); pushes to
// two repositories at once are both acknowledged, each over a session;
// with the replica killed (-9) a push is warned about exactly as
// before, and once it is back the next pushes are acknowledged again,
// over a new session, which does not hold the replica's next shutdown; a session's request from a node that is not the
// primary is refused in its answer, and only a node's key opens one.
func TestClusterSyncSession(t *testing.T) {
	p := syncPair(t, "--sync-timeout", "3s")
	st := openStore(t, p.database)
	primary, replica := p.n1.RepoDir("acme", "web"), p.n2.RepoDir("acme", "web")
	sessions := func() int { return strings.Count(p.n1.srv.Log(), `"via":["session"]`) }
	push := func(cl *testworld.Client, work, repo, what string) testworld.Result {
		t.Helper()
		cl.Commit(work, what)
		return cl.Git(work, "push", cl.URL(repo), "HEAD:main")
	}
	acknowledged := func(r testworld.Result, what string) {
		t.Helper()
		if r.Code != 0 || !strings.Contains(r.Stderr, "remote: replicated to n2") || strings.Contains(r.Stderr, "warning") {
			t.Fatalf("%s: %d\n%s", what, r.Code, r.Stderr)
		}
	}

	oneShots := func() int { return strings.Count(p.n2.srv.Log(), `"command":"cpm-peer receive-pack"`) }
	t.Run("one session, push after push", func(t *testing.T) {
		// The first push after the repository's creation: n1 knows what
		// n2 holds since its send-pack of the creating push.
		waitIdle(t, st)
		acknowledged(push(p.via1, p.work, "acme/web", "session opens"), "the first push")
		ended := oneShots()
		for i := range 3 {
			waitIdle(t, st)
			acknowledged(push(p.via1, p.work, "acme/web", fmt.Sprint("session ", i)), fmt.Sprint("push ", i))
			if got, want := refsOf(t, replica), refsOf(t, primary); got != want {
				t.Fatalf("push %d: right after it the replica holds\n%s\nthe primary\n%s", i, got, want)
			}
		}
		waitFor(t, 5*time.Second, "four writes over sessions", func() bool { return sessions() >= 4 })
		if n := strings.Count(p.n2.srv.Log(), `"message":"replica write"`); n < 4 {
			t.Errorf("the replica logged %d writes of a session, want 4", n)
		}
		if oneShots() != ended {
			t.Errorf("%d receive-pack sessions ended on the replica during three pushes: not one session for them all", oneShots()-ended)
		}
	})

	t.Run("two repositories at once", func(t *testing.T) {
		api := filepath.Join(p.n1.Root, "api")
		p.via1.MustGit("", "init", "-q", "-b", "main", api)
		acknowledged(push(p.via1, api, "acme/api", "api first"), "creating acme/api")
		waitIdle(t, st)
		before := sessions()
		p.via1.Commit(p.work, "web at once")
		p.via1.Commit(api, "api at once")
		results := make(chan testworld.Result, 2)
		for _, w := range []struct{ dir, repo string }{{p.work, "acme/web"}, {api, "acme/api"}} {
			go func() { results <- p.via1.Git(w.dir, "push", p.via1.URL(w.repo), "HEAD:main") }()
		}
		for range 2 {
			acknowledged(<-results, "a push at once with another")
		}
		waitFor(t, 5*time.Second, "both writes over sessions", func() bool { return sessions() >= before+2 })
		if got, want := refsOf(t, p.n2.RepoDir("acme", "api")), refsOf(t, p.n1.RepoDir("acme", "api")); got != want {
			t.Fatalf("acme/api on the replica\n%s\non the primary\n%s", got, want)
		}
	})

	t.Run("a session refused", func(t *testing.T) { checkSessionRefused(t, p) })

	t.Run("the replica killed and back", func(t *testing.T) {
		waitIdle(t, st)
		p.n2.srv.Signal(syscall.SIGKILL)
		if ok, _ := p.n2.srv.Wait(10 * time.Second); !ok {
			t.Fatal("n2 did not die")
		}
		r := push(p.via1, p.work, "acme/web", "while n2 is dead")
		if r.Code != 0 || !strings.Contains(r.Stderr, "remote: cpm: warning: not yet replicated to another node (sync_timeout 3s)") {
			t.Fatalf("push with the replica dead: %d\n%s", r.Code, r.Stderr)
		}
		restart(p.n2)
		waitFor(t, 30*time.Second, "n2 to catch up", func() bool { return refsOf(t, replica) == refsOf(t, primary) })
		waitIdle(t, st)
		// The first pushes may take the one-shot path while new sessions
		// to n2 are held back a moment; each is acknowledged all the same.
		before, deadline := sessions(), time.Now().Add(30*time.Second)
		for i := 0; sessions() == before; i++ {
			if time.Now().After(deadline) {
				t.Fatal("no write over a new session within 30 s after n2 came back")
			}
			waitIdle(t, st)
			acknowledged(push(p.via1, p.work, "acme/web", fmt.Sprint("n2 is back ", i)), fmt.Sprint("push ", i, " after n2 came back"))
		}
		if got, want := refsOf(t, replica), refsOf(t, primary); got != want {
			t.Fatalf("after n2 came back the replica holds\n%s\nthe primary\n%s", got, want)
		}
		// A session open from n1 does not hold n2's shutdown for its
		// grace: it ends before its next write.
		start := time.Now()
		restart(p.n2)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("n2 took %s to stop with a replication session open", took)
		}
		waitIdle(t, st)
		acknowledged(push(p.via1, p.work, "acme/web", "after n2 restarted"), "a push after n2 restarted")
	})
}

// checkSessionRefused: only a node's key opens a replication session
// (a user's is refused before anything is read), and a session's write
// from a node that is not the repository's primary is answered with
// the refusal, nothing written.
func checkSessionRefused(t *testing.T, p pairWithWeb) {
	t.Helper()
	if r := p.via2.SSHInput("", nil, "cpm-peer receive-pack --serve"); r.Code == 0 || !strings.Contains(r.Stderr, "cpm-peer commands are for approved neighbour nodes") {
		t.Errorf("a user's key opened a replication session: %d %q", r.Code, r.Stderr)
	}
	before := refsOf(t, p.n1.RepoDir("acme", "web"))
	w := wherePair(t, p.n1, "acme/web")
	var in bytes.Buffer
	replstream.WriteJSON(&in, replstream.KindRequest, replstream.Request{Repo: "acme/web", Generation: w.Generation, Fingerprint: strings.Repeat("0", 64)})
	replstream.Writer{W: &in}.Write([]byte("\nPACK"))
	replstream.Writer{W: &in}.End()
	r := p.n1.srv.Client(nodeKeyOf(t, p.n2)).SSHInput(in.String(), nil, "cpm-peer receive-pack --serve")
	if r.Code != 0 || !strings.Contains(r.Stdout, "n1 is its primary") {
		t.Errorf("a session's write from a node that is not the primary: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if after := refsOf(t, p.n1.RepoDir("acme", "web")); after != before {
		t.Errorf("a refused session write changed refs:\n%s\nwas\n%s", after, before)
	}
}
