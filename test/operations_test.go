package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A push running when the server gets SIGTERM finishes; new connections
// are refused while it drains.
func TestGracefulShutdownLetsPushesFinish(t *testing.T) {
	c := newCompany(t)
	hooks := filepath.Join(c.w.RepoDir("acme", "web"), "hooks", "pre-receive.d")
	os.MkdirAll(hooks, 0o755)
	started := filepath.Join(c.w.Root, "push-started")
	os.WriteFile(filepath.Join(hooks, "10-slow"), []byte("#!/bin/sh\ntouch "+started+"\nsleep 3\n"), 0o755)

	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "pushed during shutdown")
	done := make(chan string, 1)
	go func() {
		r := cl.Git(dir, "push", "-q", "origin", "HEAD:main")
		done <- outcome(r)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("push never reached the hook")
		}
	}
	c.srv.Signal(syscall.SIGTERM)
	if got := <-done; got != "A" {
		t.Fatalf("push during shutdown: %s", got)
	}
	if ok, _ := c.srv.Wait(20 * time.Second); !ok {
		t.Fatal("server did not exit after draining")
	}
	out, err := gitOutput(c.w.RepoDir("acme", "web"), "rev-parse", "main")
	if err != nil || out != commit {
		t.Errorf("main is %s, want %s (%v)", out, commit, err)
	}
}

// A repository's own hooks survive cpm's installation and still run after
// cpm's checks; a rejecting one still rejects.
func TestRepositoryHooksAreKept(t *testing.T) {
	c := newCompany(t)
	repo := c.w.RepoDir("acme", "web")
	// Replace cpm's hook with the repository's own, as if it came from
	// elsewhere; init must keep it and put cpm's back.
	local := "#!/bin/sh\necho local hook ran >&2\nwhile read old new ref; do [ \"$ref\" = refs/heads/blocked ] && exit 1; done\nexit 0\n"
	os.WriteFile(filepath.Join(repo, "hooks", "pre-receive"), []byte(local), 0o755)
	out := c.w.MustAdmin("init")
	if !strings.Contains(out, "installed hooks in 1 repositories") {
		t.Errorf("init did not repair hooks: %q", out)
	}
	kept, err := os.ReadFile(filepath.Join(repo, "hooks", "pre-receive.d", "50-local-pre-receive"))
	if err != nil || string(kept) != local {
		t.Fatalf("local hook not kept: %v %q", err, kept)
	}
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	cl.Commit(dir, "x")
	r := cl.Git(dir, "push", "origin", "HEAD:refs/heads/ok")
	if r.Code != 0 || !strings.Contains(r.Stderr, "local hook ran") {
		t.Errorf("push with the local hook: %+v", r)
	}
	if r := cl.Git(dir, "push", "origin", "HEAD:refs/heads/blocked"); outcome(r) != "D" {
		t.Errorf("the local hook's refusal was ignored: %+v", r)
	}
	// cpm's checks still run first: a writer cannot force-push main.
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	cl.MustGit(dir, "commit", "-q", "--amend", "-m", "rewrite")
	if r := cl.Git(dir, "push", "-f", "origin", "HEAD:main"); outcome(r) != "D" {
		t.Errorf("force-push of main by a writer: %+v", r)
	}
	if out := c.w.MustAdmin("init"); strings.Contains(out, "installed hooks") {
		t.Errorf("second init reinstalled hooks: %q", out)
	}
}

func TestMetrics(t *testing.T) {
	c := newCompany(t)
	c.clients["reader"].Git("", "ls-remote", c.srv.URL("acme/web"))
	c.clients["stranger"].Git("", "ls-remote", c.srv.URL("acme/web"))
	resp, err := http.Get("http://" + c.srv.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`cpm_sessions_total{command="git-upload-pack",decision="allow"}`,
		`cpm_denials_total{command="git-upload-pack"} 1`,
		`cpm_sessions_active 0`,
		`cpm_session_bytes_total{direction="out"}`,
		`cpm_session_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func gitOutput(dir string, args ...string) (string, error) {
	cmd := execCommand("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
