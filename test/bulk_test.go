package test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// bulkSite is a server with n small repositories (one commit each) and
// backups on real sshds.
type bulkSite struct {
	w      *testworld.World
	srv    *testworld.Server
	repos  []string
	commit map[string]string
}

// newBulkSite makes the repositories, each commit with payload random
// bytes besides.
func newBulkSite(t *testing.T, n, payload int) *bulkSite {
	t.Helper()
	w := testworld.New(t, bin)
	k := w.NewKey("admin")
	w.MustAdmin("user", "add", "admin", "--admin", "--key", k.PubPath)
	w.MustAdmin("org", "create", "acme", "--owner", "admin")
	b := &bulkSite{w: w, commit: map[string]string{}}
	for i := range n {
		b.repos = append(b.repos, fmt.Sprintf("acme/r%02d", i))
	}
	b.srv = w.StartServer()
	cl := b.srv.Client(k)
	dir := filepath.Join(w.Root, "work")
	cl.MustGit("", "init", "-q", "-b", "main", dir)
	for _, repo := range b.repos {
		if payload > 0 {
			data := make([]byte, payload)
			rand.Read(data)
			os.WriteFile(filepath.Join(dir, "payload"), data, 0o644)
			cl.MustGit(dir, "add", "payload")
		}
		// A push creates the repository; each gets a commit of its own.
		b.commit[repo] = cl.Commit(dir, repo)
		cl.MustGit(dir, "push", "-q", cl.URL(repo), "HEAD:main")
	}
	return b
}

// addBackup adds a real sshd as backup server name (with extra server add
// flags); its replicas go to b.path(name), which prepare may lay out first.
func (b *bulkSite) addBackup(t *testing.T, name string, prepare func(path string), extra ...string) *testworld.SSHD {
	t.Helper()
	d := b.w.StartBackupSSHD(name)
	if prepare != nil {
		prepare(b.path(name))
	}
	b.w.MustAdmin(append([]string{"server", "add", name, "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", b.path(name), "--role", "backup", "--host-key", d.HostKey()}, extra...)...)
	return d
}

func (b *bulkSite) path(server string) string { return filepath.Join(b.w.Root, server+"-replicas") }

func (b *bulkSite) replica(server, repo string) string {
	return filepath.Join(b.path(server), repo+".git")
}

// waitReplicated waits until every replica on server has its repository's
// main and the workers have logged its verified sync (sync status may
// summarise at large N; the log names each).
func (b *bulkSite) waitReplicated(t *testing.T, server string, from int, d time.Duration) {
	t.Helper()
	waitFor(t, d, "every replica on "+server, func() bool {
		for _, repo := range b.repos {
			if revParse(b.replica(server, repo), "refs/heads/main") != b.commit[repo] {
				return false
			}
		}
		return len(reposOf(b.on(server, b.events(from, "sync")))) == len(b.repos)
	})
}

// on keeps the events of one target.
func (b *bulkSite) on(server string, evs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if ev["target"] == server {
			out = append(out, ev)
		}
	}
	return out
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
	b := newBulkSite(t, 8, 0)
	b.addBackup(t, "b1", nil)
	b.waitReplicated(t, "b1", 0, 60*time.Second)

	stale, lacking := "acme/r03", "acme/r05"
	c := b.commit[stale]
	if err := os.WriteFile(filepath.Join(b.replica("b1", stale), "refs/heads/extra"), []byte(c+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := b.commit[lacking]
	if err := os.Remove(filepath.Join(b.replica("b1", lacking), "objects", obj[:2], obj[2:])); err != nil {
		t.Fatal(err)
	}
	from := len(b.srv.Log())
	b.w.MustAdmin("server", "set", "b1", "--every", "1s")
	waitFor(t, 30*time.Second, "the replicas to be mended", func() bool {
		return revParse(b.replica("b1", stale), "refs/heads/extra") == "" && fsckClean(b.replica("b1", lacking)) == nil &&
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

// TestBatchedReplication: the repositories bound for a new backup go in
// one batched transfer, each verified; one whose part fails on the target
// fails alone and is then retried alone, and no ref of it is shipped
// while its objects are not there; a backup that goes away in the middle
// of a batch counts nothing as synced, and the next attempt completes.
func TestBatchedReplication(t *testing.T) {
	b := newBulkSite(t, 8, 16<<10)

	t.Run("one repository fails", func(t *testing.T) {
		bad := "acme/r02"
		c := b.commit[bad]
		// A folder where the commit's object file goes: rsync cannot put
		// the file there, and says which.
		obstacle := filepath.Join(b.replica("b1", bad), "objects", c[:2], c[2:])
		b.addBackup(t, "b1", func(string) {
			if err := os.MkdirAll(filepath.Join(obstacle, "x"), 0o755); err != nil {
				t.Fatal(err)
			}
		})
		waitFor(t, 60*time.Second, "the others to be synced and the bad one to fail twice", func() bool {
			return len(reposOf(b.events(0, "sync"))) == len(b.repos)-1 && reposOf(b.events(0, "sync failed"))[bad] >= 2
		})
		for _, ev := range b.events(0, "sync") {
			if ev["batch"] != float64(len(b.repos)) {
				t.Errorf("a sync outside the batch of %d: %v", len(b.repos), ev)
			}
		}
		for _, repo := range b.repos {
			if repo != bad {
				if err := fsckClean(b.replica("b1", repo)); err != nil || revParse(b.replica("b1", repo), "main") != b.commit[repo] {
					t.Errorf("replica %s: %v", repo, err)
				}
			}
		}
		if got := revParse(b.replica("b1", bad), "main"); got != "" {
			t.Errorf("the failed replica has refs: main at %s", got)
		}
		failures := reposOf(b.events(0, "sync failed"))
		if len(failures) != 1 {
			t.Errorf("failures %v, want %s alone", failures, bad)
		}
		fails := b.events(0, "sync failed")
		if fails[0]["batch"] != float64(len(b.repos)) || fails[1]["batch"] != nil {
			t.Errorf("the first failure is not the batch's, or the retry not alone: %v", fails[:2])
		}
		if !strings.Contains(fmt.Sprint(fails[0]["error"]), c[2:]) {
			t.Errorf("the failure does not name the file: %v", fails[0]["error"])
		}
		os.RemoveAll(obstacle)
		b.waitReplicated(t, "b1", 0, 60*time.Second)
		if err := fsckClean(b.replica("b1", bad)); err != nil {
			t.Error(err)
		}
	})

	t.Run("the backup goes away mid-batch", func(t *testing.T) {
		from := len(b.srv.Log())
		d := b.addBackup(t, "b2", nil, "--bwlimit", "8")
		waitFor(t, 30*time.Second, "the batch to start", func() bool {
			return len(b.on("b2", b.events(from, "sync started"))) > 0
		})
		time.Sleep(time.Second)
		d.Stop()
		waitFor(t, 30*time.Second, "the batch to fail", func() bool {
			return len(reposOf(b.on("b2", b.events(from, "sync failed")))) == len(b.repos)
		})
		if got := b.on("b2", b.events(from, "sync")); len(got) != 0 {
			t.Errorf("synced while the backup went away: %v", got)
		}
		for _, repo := range b.repos {
			if got := revParse(b.replica("b2", repo), "main"); got != "" {
				t.Errorf("%s has refs on the backup that went away: %s", repo, got)
			}
		}
		d.Restart()
		b.w.MustAdmin("server", "set", "b2", "--bwlimit", "0")
		b.w.MustAdmin("sync", "retry")
		b.waitReplicated(t, "b2", from, 90*time.Second)
		for _, repo := range b.repos {
			if err := fsckClean(b.replica("b2", repo)); err != nil {
				t.Errorf("%s: %v", repo, err)
			}
		}
	})
}
