package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// bulkSite is a server with n small repositories (one commit each) and a
// backup on a real sshd.
type bulkSite struct {
	w      *testworld.World
	srv    *testworld.Server
	sshd   *testworld.SSHD
	path   string // the backup's replicas
	repos  []string
	commit map[string]string
}

func newBulkSite(t *testing.T, n int, serverFlags ...string) *bulkSite {
	t.Helper()
	w := testworld.New(t, bin)
	k := w.NewKey("admin")
	w.MustAdmin("user", "add", "admin", "--admin", "--key", k.PubPath)
	w.MustAdmin("org", "create", "acme", "--owner", "admin")
	b := &bulkSite{w: w, commit: map[string]string{}}
	for i := range n {
		b.repos = append(b.repos, fmt.Sprintf("acme/r%02d", i))
	}
	b.srv = w.StartServer(serverFlags...)
	cl := b.srv.Client(k)
	dir := filepath.Join(w.Root, "work")
	cl.MustGit("", "init", "-q", "-b", "main", dir)
	for _, repo := range b.repos {
		// A push creates the repository; each gets a commit of its own.
		b.commit[repo] = cl.Commit(dir, repo)
		cl.MustGit(dir, "push", "-q", cl.URL(repo), "HEAD:main")
	}
	b.sshd, b.path = backup(t, w, "b1")
	return b
}

func (b *bulkSite) replica(repo string) string { return filepath.Join(b.path, repo+".git") }

// waitReplicated waits until every replica has its repository's main and
// the workers have logged its verified sync (sync status may summarise at
// large N; the log names each).
func (b *bulkSite) waitReplicated(t *testing.T, d time.Duration) {
	t.Helper()
	waitFor(t, d, "every replica", func() bool {
		for _, repo := range b.repos {
			if revParse(b.replica(repo), "refs/heads/main") != b.commit[repo] {
				return false
			}
		}
		return len(reposOf(b.events(0, "sync"))) == len(b.repos)
	})
}

// events are the server's log events with message msg since the log had
// from bytes.
func (b *bulkSite) events(from int, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.srv.Log()[from:], "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil && ev["message"] == msg {
			out = append(out, ev)
		}
	}
	return out
}

// reposOf counts events by repository.
func reposOf(evs []map[string]any) map[string]int {
	n := map[string]int{}
	for _, ev := range evs {
		n[fmt.Sprint(ev["repo"])]++
	}
	return n
}

// TestBulkReconciliation: a reconciliation pass over a backup asks it once
// for the state of all its replicas and acts on exactly those that
// differ: the replica with a ref of its own is synced again, the one that
// lost an object file is repaired, and nothing else is sent anywhere.
func TestBulkReconciliation(t *testing.T) {
	b := newBulkSite(t, 8)
	b.waitReplicated(t, 60*time.Second)

	stale, lacking := "acme/r03", "acme/r05"
	c := b.commit[stale]
	if err := os.WriteFile(filepath.Join(b.replica(stale), "refs/heads/extra"), []byte(c+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := b.commit[lacking]
	if err := os.Remove(filepath.Join(b.replica(lacking), "objects", obj[:2], obj[2:])); err != nil {
		t.Fatal(err)
	}
	from := len(b.srv.Log())
	b.w.MustAdmin("server", "set", "b1", "--every", "1s")
	waitFor(t, 30*time.Second, "the replicas to be mended", func() bool {
		return revParse(b.replica(stale), "refs/heads/extra") == "" && fsckClean(b.replica(lacking)) == nil &&
			reposOf(b.events(from, "sync"))[stale] > 0
	})
	passes := b.events(from, "reconcile")
	if len(passes) == 0 {
		t.Fatal("no reconcile event")
	}
	first := passes[0]
	if first["bulk"] != true || first["alone"] != 0.0 || first["checked"] != 8.0 || first["stale"] != 1.0 || first["repaired"] != 1.0 {
		t.Errorf("the first pass: %v", first)
	}
	if got := reposOf(b.events(from, "sync")); len(got) != 1 {
		t.Errorf("syncs after the damage: %v, want %s alone", got, stale)
	}
	if got := reposOf(b.events(from, "repair replica")); len(got) != 1 || got[lacking] != 1 {
		t.Errorf("repairs after the damage: %v, want one of %s", got, lacking)
	}

	// Passes over current replicas cost one ssh session each, not one or
	// two per replica.
	sshdLog := filepath.Join(b.w.Root, "b1", "sshd.log")
	sessions := func() int {
		data, _ := os.ReadFile(sshdLog)
		return strings.Count(string(data), "Starting session: command")
	}
	quiet, before := len(b.srv.Log()), sessions()
	waitFor(t, 20*time.Second, "three passes that find nothing", func() bool {
		n := 0
		for _, ev := range b.events(quiet, "reconcile") {
			if ev["stale"] == 0.0 && ev["repaired"] == 0.0 && ev["checked"] == 8.0 {
				n++
			}
		}
		return n >= 3
	})
	passes = b.events(quiet, "reconcile")
	if n := sessions() - before; n > 2*len(passes) {
		t.Errorf("%d ssh sessions on the backup for %d passes over 8 current replicas", n, len(passes))
	}
}
