package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// backup adds a real sshd as backup server NAME and returns it with the
// directory its replicas go to.
func backup(t *testing.T, w *testworld.World, name string) (*testworld.SSHD, string) {
	t.Helper()
	d := w.StartBackupSSHD(name)
	path := filepath.Join(w.Root, name+"-replicas")
	w.MustAdmin("server", "add", name, "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey())
	return d, path
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// jobOf is the sync status row of repo on server, or nil.
func jobOf(t *testing.T, c *company, repo, server string) map[string]any {
	t.Helper()
	for _, j := range jsonList(t, c.w, "sync", "status") {
		if j["repo"] == repo && j["server"] == server {
			return j
		}
	}
	return nil
}

func revParse(dir, rev string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "-q", "--verify", rev).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func TestReplicationToBackup(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	if out := c.w.MustAdmin("server", "check", "b1"); !strings.Contains(out, "writable: yes") || !strings.Contains(out, "rsync") {
		t.Errorf("server check: %s", out)
	}
	replica := filepath.Join(path, "acme", "web.git")
	// Adding the server queued every repository; a push wakes the workers.
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "replicate me")
	start := time.Now()
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main", "HEAD:refs/heads/topic")
	waitFor(t, 20*time.Second, "the replica to have the push", func() bool {
		return revParse(replica, "refs/heads/main") == commit && revParse(replica, "refs/heads/topic") == commit
	})
	t.Logf("push to verified replica: %v", time.Since(start))
	if out, err := exec.Command("git", "-C", replica, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck of the replica: %v\n%s", err, out)
	}
	if head, _ := os.ReadFile(filepath.Join(replica, "HEAD")); strings.TrimSpace(string(head)) != "ref: refs/heads/main" {
		t.Errorf("replica HEAD %q", head)
	}
	// Hooks and config stay on the origin.
	if _, err := os.Stat(filepath.Join(replica, "hooks", "pre-receive")); !os.IsNotExist(err) {
		t.Errorf("hooks were copied: %v", err)
	}
	waitFor(t, 10*time.Second, "sync status done", func() bool {
		for _, j := range jsonList(t, c.w, "sync", "status") {
			if j["repo"] == "acme/web" && j["server"] == "b1" {
				return j["state"] == "done" && j["last_error"] == ""
			}
		}
		return false
	})
	// A deleted branch goes away on the replica too.
	cl.MustGit(dir, "push", "-q", "origin", ":refs/heads/topic")
	waitFor(t, 20*time.Second, "the deletion to reach the replica", func() bool {
		return revParse(replica, "refs/heads/topic") == ""
	})
	if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1"); !strings.Contains(out, "matches") {
		t.Errorf("sync verify: %s", out)
	}
	// A manual sync of a repository prints the seed's summary.
	out := c.w.MustAdmin("sync", "push", "acme/pub", "--to", "b1")
	if !strings.Contains(out, "files") || !strings.Contains(out, "bytes") || !strings.Contains(out, "KiB/s") || !strings.Contains(out, "verified") {
		t.Errorf("sync push: %s", out)
	}
	if strings.Contains(c.srv.Log(), `"level":"error"`) {
		t.Errorf("errors in the server log:\n%s", c.srv.Log())
	}
	resp, err := http.Get("http://" + c.srv.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`cpm_replication_attempts_total{result="ok",target="b1"}`,
		`cpm_replication_target_up{target="b1"} 1`,
		`cpm_replication_pending{target="b1"} 0`,
		`cpm_replication_oldest_unsynced_seconds{target="b1"} 0`,
		`cpm_replication_delay_seconds_bucket{target="b1"`,
		`cpm_replication_bytes_sent_total{target="b1"}`,
		`cpm_replication_average_speed_bytes_per_second{target="b1"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The seed's last sync time, per target: within this test's run.
	m := regexp.MustCompile(`(?m)^cpm_replication_last_success_timestamp_seconds\{target="b1"\} (\S+)$`).FindStringSubmatch(string(body))
	if m == nil {
		t.Errorf("metrics lack cpm_replication_last_success_timestamp_seconds for b1")
	} else if ts, _ := strconv.ParseFloat(m[1], 64); ts < float64(start.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last success at %s, want between %d and now", m[1], start.Unix())
	}
	log := c.srv.Log()
	started, done := strings.Index(log, `"message":"sync started"`), strings.Index(log, `"message":"sync"`)
	if started < 0 || done < 0 || started > done {
		t.Errorf("want a sync started event before the sync event; at %d and %d", started, done)
	}
}

func TestReplicationRefusesWrongHostKey(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("evil")
	path := filepath.Join(c.w.Root, "evil-replicas")
	other := c.w.NewKey("not-the-host-key")
	c.w.MustAdmin("server", "add", "evil", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", other.Public)
	wantError(t, c.w.Admin("", "server", "check", "evil"), "Host key verification failed")
	var status map[string]any
	waitFor(t, 20*time.Second, "the target to be blocked", func() bool {
		for _, j := range jsonList(t, c.w, "sync", "status") {
			if j["server"] == "evil" && j["state"] == "blocked" {
				status = j
				return true
			}
		}
		return false
	})
	if !strings.Contains(status["last_error"].(string), "Host key verification failed") {
		t.Errorf("status: %v", status)
	}
	if list := jsonList(t, c.w, "server", "list"); !strings.Contains(list[0]["blocked_reason"].(string), "Host key") {
		t.Errorf("server list: %v", list)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("something was written to a server with the wrong host key: %v", err)
	}
	// Without a pinned key and without --yes, nothing is added.
	r := c.w.Admin("", "server", "add", "unpinned", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup")
	wantError(t, r, "host key not confirmed")
	if !strings.Contains(r.Stdout, "SHA256:") {
		t.Errorf("the fetched key's fingerprint was not shown: %q", r.Stdout)
	}
}

func TestReplicationWaitsForADownBackup(t *testing.T) {
	c := newCompany(t)
	d, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	waitFor(t, 20*time.Second, "the first sync", func() bool { return revParse(replica, "refs/heads/main") == c.main })
	d.Stop()
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "while the backup is down")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main") // the push itself succeeds
	waitFor(t, 20*time.Second, "a failed attempt", func() bool {
		for _, j := range jsonList(t, c.w, "sync", "status") {
			if j["repo"] == "acme/web" && j["state"] == "failed" && j["attempts"].(float64) >= 1 {
				return true
			}
		}
		return false
	})
	// The backup comes back (same host key, same port).
	d.Restart()
	c.w.MustAdmin("sync", "retry")
	waitFor(t, 30*time.Second, "convergence after the backup returned", func() bool {
		return revParse(replica, "refs/heads/main") == commit
	})
}

// kill -9 of the server with work queued: after the restart the queue is
// still there and the replica converges.
func TestReplicationSurvivesKill9(t *testing.T) {
	c := newCompany(t)
	d, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	waitFor(t, 20*time.Second, "the first sync", func() bool { return revParse(replica, "refs/heads/main") == c.main })
	d.Stop() // jobs will pile up
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "queued before the crash")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	c.srv.Signal(syscall.SIGKILL)
	c.srv.Wait(10 * time.Second)
	d.Restart()
	c.srv = c.w.StartServer()
	waitFor(t, 40*time.Second, "convergence after kill -9", func() bool {
		return revParse(replica, "refs/heads/main") == commit
	})
}

// Pushes keep landing while syncs run; at the end the replica equals the
// source and passes fsck.
func TestReplicationUnderConcurrentPushes(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	cl := c.clients["writer"]
	const n = 20
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		dir, r := cl.Clone("acme/web")
		if r.Code != 0 {
			t.Fatal(r.Stderr)
		}
		cl.Commit(dir, fmt.Sprintf("concurrent %d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := cl.Git(dir, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/heads/c%d", i)); r.Code != 0 {
				errs <- r.Stderr
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("push: %s", e)
	}
	source := c.w.RepoDir("acme", "web")
	waitFor(t, 60*time.Second, "the replica to equal the source", func() bool {
		return showRef(source) != "" && showRef(source) == showRef(replica)
	})
	if out, err := exec.Command("git", "-C", replica, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck: %v\n%s", err, out)
	}
}

// A git gc on the source during syncs leaves the replica consistent.
func TestReplicationConsistentThroughGC(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	source := c.w.RepoDir("acme", "web")
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	// gc runs over and over, by hand, while pushes land and syncs run.
	stop := make(chan struct{})
	gcDone := make(chan int)
	go func() {
		runs := 0
		for {
			select {
			case <-stop:
				gcDone <- runs
				return
			default:
			}
			// Default prune grace: --prune=now is unsafe against concurrent
			// pushes in git itself.
			exec.Command("git", "-C", source, "gc", "--quiet").Run()
			runs++
		}
	}()
	for i := range 10 {
		cl.Commit(dir, fmt.Sprintf("during gc %d", i))
		// A hand-run gc can remove an empty objects/xx/ folder just as
		// receive-pack moves a pushed object into it, and git rejects the
		// push ("unable to migrate objects"): git's own race, the reason cpm
		// turns auto-gc off and repacks under its lock. Push again then;
		// what this test checks is the replica.
		for attempt := 1; ; attempt++ {
			r := cl.Git(dir, "push", "-q", "origin", "HEAD:main")
			if r.Code == 0 {
				break
			}
			if attempt == 5 || !strings.Contains(r.Stderr, "unable to migrate objects") {
				t.Fatalf("push: %s", r.Stderr)
			}
		}
		// Pace the pushes so that gc runs fall between them (and
		// during the syncs they start); nothing waits on an outcome here.
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	t.Logf("%d gc runs during the pushes", <-gcDone)
	waitFor(t, 60*time.Second, "the replica to equal the source", func() bool {
		return showRef(source) == showRef(replica)
	})
	if out, err := exec.Command("git", "-C", replica, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck after gc: %v\n%s", err, out)
	}
	// A clone from the replica works.
	if out, err := exec.Command("git", "clone", "-q", "--no-local", replica, filepath.Join(c.w.Root, "from-replica")).CombinedOutput(); err != nil {
		t.Errorf("clone from the replica: %v %s", err, out)
	}
}

func showRef(dir string) string {
	out, _ := exec.Command("git", "-C", dir, "show-ref", "--head").Output()
	return string(out)
}

// commitInto makes a commit on top of ref (or a root commit when ref is
// "") and pushes it straight into the bare repository at bare.
func commitInto(t *testing.T, w *testworld.World, bare, ref, msg string) string {
	t.Helper()
	work := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(testworld.Env(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	if ref != "" {
		run("fetch", "-q", bare, ref)
		run("reset", "-q", "--hard", "FETCH_HEAD")
	}
	os.WriteFile(filepath.Join(work, "f"), []byte(msg), 0o644)
	run("add", "f")
	run("commit", "-q", "-m", msg)
	run("push", "-q", "-f", bare, "HEAD:main")
	return run("rev-parse", "HEAD")
}

func TestSyncPullAndDivergence(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	local := w.RepoDir("acme", "web")
	base := commitInto(t, w, local, "", "base")
	_, path := backup(t, w, "b1")
	w.MustAdmin("sync", "push", "acme/web", "--to", "b1")
	replica := filepath.Join(path, "acme", "web.git")

	// The replica moved ahead (a fast-forward): pull takes it.
	ahead := commitInto(t, w, replica, "main", "ahead on the replica")
	out := w.MustAdmin("sync", "pull", "acme/web", "--from", "b1")
	if revParse(local, "main") != ahead || !strings.Contains(out, "pulled acme/web from b1") {
		t.Fatalf("fast-forward pull: main %s, want %s; %s", revParse(local, "main"), ahead, out)
	}
	// Both moved: local commits are not in the source.
	mine := commitInto(t, w, local, "main", "only here")
	theirs := commitInto(t, w, replica, base, "only there")
	wantError(t, w.Admin("", "sync", "pull", "acme/web", "--from", "b1"), "not contained in the source")
	if revParse(local, "main") != mine {
		t.Fatalf("a refused pull changed main")
	}
	// Their objects arrived anyway (adding objects loses nothing), refs did not.
	if out, err := exec.Command("git", "-C", local, "cat-file", "-e", theirs).CombinedOutput(); err != nil {
		t.Errorf("objects not pulled: %v %s", err, out)
	}
	w.MustAdmin("sync", "pull", "acme/web", "--from", "b1", "--force")
	if revParse(local, "main") != theirs {
		t.Errorf("forced pull: main %s, want %s", revParse(local, "main"), theirs)
	}
	if out, err := exec.Command("git", "-C", local, "fsck", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck after pull: %v %s", err, out)
	}
	// The lost commit is still in the reflog: nothing is gone for good.
	if out, _ := exec.Command("git", "-C", local, "reflog", "show", "main").Output(); !strings.Contains(string(out), mine[:7]) {
		t.Errorf("reflog lost the replaced commit:\n%s", out)
	}
}

// A backup without rsync still gets a consistent replica, by tar over ssh.
func TestReplicationFallsBackToTar(t *testing.T) {
	c := newCompany(t)
	noRsync := c.w.PathWithout("rsync")
	d := c.w.StartBackupSSHD("tarbackup", "SetEnv PATH="+noRsync)
	path := filepath.Join(c.w.Root, "tar-replicas")
	c.w.MustAdmin("server", "add", "tb", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey())
	if out := c.w.MustAdmin("server", "check", "tb"); !strings.Contains(out, "tar over ssh") {
		t.Errorf("server check does not say rsync is missing: %s", out)
	}
	replica := filepath.Join(path, "acme", "web.git")
	waitFor(t, 30*time.Second, "the first copy by tar", func() bool { return revParse(replica, "refs/heads/main") == c.main })
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "by tar")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main", "HEAD:refs/heads/t1")
	waitFor(t, 30*time.Second, "the push to arrive by tar", func() bool {
		return revParse(replica, "refs/heads/main") == commit && revParse(replica, "refs/heads/t1") == commit
	})
	cl.MustGit(dir, "push", "-q", "origin", ":refs/heads/t1")
	waitFor(t, 30*time.Second, "the deletion to arrive by tar", func() bool { return revParse(replica, "refs/heads/t1") == "" })
	if out, err := exec.Command("git", "-C", replica, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck: %v\n%s", err, out)
	}
	if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "tb"); !strings.Contains(out, "matches") {
		t.Errorf("verify: %s", out)
	}
}

func TestSelectiveAndScheduledSync(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("b1")
	path := filepath.Join(c.w.Root, "b1-replicas")
	c.w.MustAdmin("server", "add", "b1", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey(),
		"--repos", "acme/web", "--refs", "refs/heads/main,refs/tags/*")
	web := filepath.Join(path, "acme", "web.git")
	writer := c.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "scoped")
	writer.MustGit(dir, "tag", "v1")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main", "HEAD:topic", "v1")
	waitFor(t, 30*time.Second, "acme/web on b1", func() bool { return revParse(web, "main") == commit })
	if revParse(web, "refs/tags/v1") == "" || revParse(web, "refs/heads/topic") != "" {
		t.Errorf("refs on b1: tag %q, topic %q; want the tag and not the branch", revParse(web, "refs/tags/v1"), revParse(web, "refs/heads/topic"))
	}
	// What README and `server set --help` say: --refs limits the refs, not
	// the objects; a commit only on another branch is there by its id.
	onlyTopic := writer.Commit(dir, "only on topic")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:topic")
	waitFor(t, 30*time.Second, "the topic push to be synced to b1", func() bool {
		j := jobOf(t, c, "acme/web", "b1")
		return j != nil && j["state"] == "done" && j["synced_generation"] == j["generation"]
	})
	if out, err := exec.Command("git", "-C", web, "cat-file", "-e", onlyTopic+"^{commit}").CombinedOutput(); err != nil {
		t.Errorf("the commit only on topic is not on b1, so the docs are wrong: %v %s", err, out)
	}
	writer.MustGit(dir, "reset", "-q", "--hard", commit)
	if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1"); !strings.Contains(out, "match") {
		t.Errorf("verify of a ref-limited replica: %s", out)
	}
	// The worker's own record that it left acme/pub alone: done, nothing sent.
	waitFor(t, 30*time.Second, "the out-of-scope job to be recorded", func() bool {
		j := jobOf(t, c, "acme/pub", "b1")
		return j != nil && j["state"] == "done" && j["fingerprint"] == ""
	})
	if _, err := os.Stat(filepath.Join(path, "acme", "pub.git")); err == nil {
		t.Error("acme/pub reached b1 outside its scope")
	}

	// A wider scope takes effect at once; a narrower one deletes nothing.
	c.w.MustAdmin("server", "set", "b1", "--repos", "acme/*", "--bwlimit", "5000", "--compress", "3")
	waitFor(t, 30*time.Second, "acme/pub on b1", func() bool { return revParse(filepath.Join(path, "acme", "pub.git"), "main") != "" })
	c.w.MustAdmin("server", "set", "b1", "--repos", "acme/pub")
	commit2 := writer.Commit(dir, "out of scope now")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "the push out of scope to be recorded", func() bool {
		j := jobOf(t, c, "acme/web", "b1")
		return j != nil && j["state"] == "done" && j["fingerprint"] == ""
	})
	if got := revParse(web, "main"); got != commit {
		t.Errorf("acme/web on b1 after leaving the scope: %s, want it left at %s (not %s, not deleted)", got, commit, commit2)
	}
	// By hand as well: refused, naming the scope, unless --force.
	wantError(t, c.w.Admin("", "sync", "push", "acme/web", "--to", "b1"), "acme/web is outside the scope of b1 (--repos acme/pub); --force sends it anyway")
	if got := revParse(web, "main"); got != commit {
		t.Errorf("acme/web on b1 after a refused sync push: %s, want %s", got, commit)
	}
	c.w.MustAdmin("sync", "push", "acme/web", "--to", "b1", "--force")
	if got := revParse(web, "main"); got != commit2 {
		t.Errorf("acme/web on b1 after sync push --force: %s, want %s", got, commit2)
	}
	list := jsonList(t, c.w, "server", "list")
	if list[0]["repos"] != "acme/pub" || fmt.Sprint(list[0]["bwlimit_kbps"]) != "5000" || fmt.Sprint(list[0]["compress_level"]) != "3" {
		t.Errorf("server list: %v", list[0])
	}
	if out := c.w.MustAdmin("server", "list"); !strings.Contains(out, "5000 KiB/s") || !strings.Contains(out, "acme/pub") {
		t.Errorf("server list table: %s", out)
	}

	// Reconciliation repairs drift without a push.
	pub := filepath.Join(path, "acme", "pub.git")
	c.w.MustAdmin("server", "set", "b1", "--every", "2s")
	want := revParse(pub, "main")
	if out, err := exec.Command("git", "-C", pub, "update-ref", "-d", "refs/heads/main").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	waitFor(t, 30*time.Second, "reconciliation to repair b1", func() bool { return revParse(pub, "main") == want })

	// Bad settings are refused.
	wantError(t, c.w.Admin("", "server", "set", "b1", "--repos", "../x"), "repository pattern")
	wantError(t, c.w.Admin("", "server", "set", "b1", "--refs", "refs/heads/["), "")
	wantError(t, c.w.Admin("", "server", "set", "b1", "--compress", "12"), "compress")
	wantError(t, c.w.Admin("", "server", "set", "b1", "--every", "0s"), "every")
	wantError(t, c.w.Admin("", "server", "set", "nope", "--every", "1h"), "not found")
}
