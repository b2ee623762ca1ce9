package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// damage is something that happens to a replica behind cpm's back.
type damage struct {
	name string
	// do damages the replica at dir and returns the object file it hit.
	do func(t *testing.T, dir string) string
}

func objectFiles(t *testing.T, dir, glob string) []string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(dir, "objects", glob))
	if len(found) == 0 {
		t.Fatalf("no %s in %s", glob, dir)
	}
	return found
}

var damages = []damage{
	{"flip 64 bytes in a pack, size and mtime kept", func(t *testing.T, dir string) string {
		p := largest(objectFiles(t, dir, "pack/*.pack"))
		fi, _ := os.Stat(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 2; i < len(b)/2+64; i++ {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(p, b, 0o444); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, fi.ModTime(), fi.ModTime())
		return p
	}},
	{"delete a pack", func(t *testing.T, dir string) string {
		p := largest(objectFiles(t, dir, "pack/*.pack"))
		os.Remove(p)
		return p
	}},
	{"delete a loose object", func(t *testing.T, dir string) string {
		// The newest commit's: its ref cannot even be read then.
		head := revParse(dir, "main")
		p := filepath.Join(dir, "objects", head[:2], head[2:])
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return p
	}},
	{"truncate an .idx", func(t *testing.T, dir string) string {
		p := strings.TrimSuffix(largest(objectFiles(t, dir, "pack/*.pack")), ".pack") + ".idx"
		os.Truncate(p, 100)
		return p
	}},
}

// pushPack pushes to acme/web main a commit of more objects than
// receive.unpackLimit, so that it stays a pack, and returns the clone.
func pushPack(t *testing.T, cl *testworld.Client) string {
	t.Helper()
	dir, _ := cl.Clone("acme/web")
	for i := range 120 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte(fmt.Sprint(i, time.Now().UnixNano())), 0o644)
	}
	cl.MustGit(dir, "add", ".")
	cl.MustGit(dir, "commit", "-q", "-m", "many files")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	return dir
}

// largest is the biggest of files: the pack that holds the history.
func largest(files []string) string {
	var best string
	var size int64 = -1
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > size {
			best, size = f, fi.Size()
		}
	}
	return best
}

func fsckClean(dir string) error {
	out, err := exec.Command("git", "-C", dir, "fsck", "--strict", "--no-dangling").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestReplicasHeal damages a backup's replica four ways. Each is found by
// sync verify --deep and doctor --deep and repaired by sync verify
// --repair; then, with short intervals, each is found and repaired by the
// workers alone, without a push. The replica is fsck --strict clean after
// every repair.
//
// CPM_TEST_REPOS=N adds N more repositories, all replicated to the backup
// before the damage starts, so that the workers heal among many (issue
// 25 asks for a run at 1,000); the waits grow with N.
func TestReplicasHeal(t *testing.T) {
	c := newCompany(t)
	extra := manyRepos(t, c.w)
	_, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	waitForMany(t, c.w, "b1", extra)
	patience := 30*time.Second + time.Duration(extra)*200*time.Millisecond

	// A pack (a push of more than receive.unpackLimit objects) and loose
	// objects (a small push) on the source, so on the replica.
	cl := c.clients["writer"]
	dir := pushPack(t, cl)
	commit := cl.Commit(dir, "one more")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "the replica", func() bool { return revParse(replica, "main") == commit })
	if err := fsckClean(replica); err != nil {
		t.Fatalf("replica before any damage: %v", err)
	}
	if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1", "--deep"); !strings.Contains(out, "no object files missing or damaged") {
		t.Fatalf("deep verify of a sound replica: %s", out)
	}

	for _, d := range damages {
		t.Run("by hand/"+d.name, func(t *testing.T) {
			hit := filepath.Base(d.do(t, replica))
			r := c.w.Admin("", "sync", "verify", "acme/web", "--to", "b1", "--deep")
			wantError(t, r, "object files are")
			if !strings.Contains(r.Stderr, hit) {
				t.Errorf("sync verify --deep does not name %s: %s", hit, r.Stderr)
			}
			doc := c.w.Admin("", "doctor", "--deep")
			if doc.Code == 0 || !strings.Contains(doc.Stdout, "FAIL  replica contents") || !strings.Contains(doc.Stdout, hit) {
				t.Errorf("doctor --deep (exit %d):\n%s", doc.Code, doc.Stdout)
			}
			if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1", "--deep", "--repair"); !strings.Contains(out, "repaired acme/web on b1") {
				t.Errorf("sync verify --deep --repair: %s", out)
			}
			if err := fsckClean(replica); err != nil {
				t.Errorf("replica after the repair: %v", err)
			}
		})
	}

	// The workers alone: deep checks every 2 s, reconciliation every 1 s.
	c.srv.Stop()
	c.srv = c.w.StartServer("--verify-every", "2s")
	c.w.MustAdmin("server", "set", "b1", "--every", "1s")
	repairs := func() int { return strings.Count(c.srv.Log(), `"message":"repair replica"`) }
	for _, d := range damages {
		t.Run("by the workers/"+d.name, func(t *testing.T) {
			before := repairs()
			d.do(t, replica)
			if fsckClean(replica) == nil {
				t.Fatal("the damage does not show in git fsck")
			}
			waitFor(t, patience, "the workers to repair the replica", func() bool {
				return repairs() > before && fsckClean(replica) == nil
			})
		})
	}
	m := metricsText(t, c.srv.MetricsAddr)
	for _, cause := range []string{"damaged", "missing"} {
		if !strings.Contains(m, `cpm_replication_repairs_total{cause="`+cause+`",target="b1"}`) {
			t.Errorf("no repair with cause %s in the metrics:\n%s", cause, grepLines(m, "repairs"))
		}
	}
	if log := c.srv.Log(); !strings.Contains(log, `"message":"repair replica"`) {
		t.Errorf("no repair event in the log")
	}
	st := jsonList(t, c.w, "sync", "status")
	for _, j := range st {
		if j["repo"] == "acme/web" && j["deep_checked_at"] == "" {
			t.Errorf("sync status shows no deep check: %v", j)
		}
	}
}

// manyRepos creates CPM_TEST_REPOS (default none) repositories in the
// organisation "many", before a backup is added (server add queues every
// repository); it returns how many.
func manyRepos(t *testing.T, w *testworld.World) int {
	t.Helper()
	n, _ := strconv.Atoi(os.Getenv("CPM_TEST_REPOS"))
	if n <= 0 {
		return 0
	}
	w.MustAdmin("org", "create", "many")
	for i := range n {
		w.MustAdmin("repo", "create", fmt.Sprintf("many/r%04d", i))
	}
	return n
}

// waitForMany waits until server holds the n repositories of manyRepos.
func waitForMany(t *testing.T, w *testworld.World, server string, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	waitFor(t, time.Duration(n)*time.Second, fmt.Sprintf("%d repositories on %s", n, server), func() bool {
		done := 0
		for _, j := range jsonList(t, w, "sync", "status") {
			if repo, _ := j["repo"].(string); strings.HasPrefix(repo, "many/") && j["server"] == server && j["state"] == "done" {
				done++
			}
		}
		return done >= n
	})
	t.Logf("%d more repositories replicated to %s", n, server)
}

// TestMaintenanceTidies: quarantines of pushes cut off long ago and stale
// lock files go at the next maintenance; a fresh quarantine stays.
func TestMaintenanceTidies(t *testing.T) {
	c := newCompany(t)
	repo := c.w.RepoDir("acme", "web")
	old := time.Now().Add(-time.Hour)
	// mk writes a file and dates it and its folders up to objects/ or refs/.
	mk := func(p string, mtime time.Time) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, 4096), 0o644)
		for q := p; filepath.Base(q) != "objects" && filepath.Base(q) != "heads"; q = filepath.Dir(q) {
			os.Chtimes(q, mtime, mtime)
		}
	}
	staleQ := filepath.Join(repo, "objects", "tmp_objdir-incoming-dead", "pack", "tmp_pack_x")
	freshQ := filepath.Join(repo, "objects", "tmp_objdir-incoming-live", "pack", "tmp_pack_y")
	staleLock := filepath.Join(repo, "refs", "heads", "stuck.lock")
	mk(staleQ, old)
	mk(freshQ, time.Now())
	mk(staleLock, old)
	c.srv.Stop()
	// max-session-time 1m: anything untouched for 2m is no push's any more.
	c.srv = c.w.StartServer("--repack", "1s", "--max-session-time", "1m")
	waitFor(t, 20*time.Second, "maintenance to tidy", func() bool {
		_, e1 := os.Stat(filepath.Dir(filepath.Dir(staleQ)))
		_, e2 := os.Stat(staleLock)
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
	if _, err := os.Stat(freshQ); err != nil {
		t.Errorf("a fresh quarantine was removed: %v", err)
	}
	if !strings.Contains(c.srv.Log(), "tidy: removed what interrupted pushes left") {
		t.Errorf("no tidy event in the log")
	}
}

// TestNeighborReplicaHeals: a neighbour's replica with a damaged pack is
// found by the origin's deep check and repaired through the neighbour's
// own rsync modules.
func TestNeighborReplicaHeals(t *testing.T) {
	n := newTwoNodes(t)
	n.approve(t)
	replica := n.b.RepoDir("acme", "web")
	commit := revParse(pushPack(t, n.clients["writer"]), "HEAD")
	waitFor(t, 30*time.Second, "the replica on B", func() bool { return revParse(replica, "main") == commit })
	hit := filepath.Base(damages[0].do(t, replica))
	r := n.w.Admin("", "sync", "verify", "acme/web", "--to", n.bName, "--deep")
	wantError(t, r, "object files are")
	if !strings.Contains(r.Stderr, hit) {
		t.Errorf("deep verify of the neighbour does not name %s: %s", hit, r.Stderr)
	}
	if out := n.w.MustAdmin("sync", "verify", "acme/web", "--to", n.bName, "--deep", "--repair"); !strings.Contains(out, "repaired") {
		t.Errorf("repair on the neighbour: %s", out)
	}
	if err := fsckClean(replica); err != nil {
		t.Errorf("the neighbour's replica after the repair: %v", err)
	}
}

// TestPruningKeepsToTheScope: once a repository is outside a backup's
// --repos, maintenance leaves its replica there alone (pruning a replica
// sends the new packs and deletes the old ones).
func TestPruningKeepsToTheScope(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	// A pack and loose objects: the next repack removes the loose ones,
	// which makes a prune of every current replica in scope due.
	cl := c.clients["writer"]
	dir := pushPack(t, cl)
	cl.Commit(dir, "loose objects")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "the replica on b1", func() bool {
		j := jobOf(t, c, "acme/web", "b1")
		return j != nil && j["fingerprint"] != "" && revParse(filepath.Join(path, "acme", "web.git"), "main") == revParse(c.w.RepoDir("acme", "web"), "main")
	})
	c.w.MustAdmin("server", "set", "b1", "--repos", "acme/pub")
	c.srv.Stop()
	c.srv = c.w.StartServer("--repack", "1s")
	// A pass prunes right after each repack, so by the end of the second
	// pass the first one's prune of acme/web would be in the log.
	waitFor(t, 60*time.Second, "two maintenance passes", func() bool {
		return strings.Count(c.srv.Log(), `"message":"maintenance pass"`) >= 2
	})
	for _, line := range strings.Split(c.srv.Log(), "\n") {
		if strings.Contains(line, "prune replica") && strings.Contains(line, `"repo":"acme/web"`) {
			t.Errorf("maintenance pruned a replica outside the scope: %s", line)
		}
	}
}
