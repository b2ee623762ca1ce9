package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestWhatANewUserHit: the small things a new user ran into, each with the
// answer it should have had.
func TestWhatANewUserHit(t *testing.T) {
	w := testworld.New(t, bin)
	k := w.NewKey("bob")
	w.MustAdmin("user", "add", "bob", "--key", k.PubPath)
	w.MustAdmin("org", "create", "acme", "--owner", "bob")
	w.MustAdmin("repo", "create", "acme/web")
	dk := w.NewKey("ci")
	w.MustAdmin("repo", "deploy-key", "add", "acme/web", dk.PubPath)

	// Names taken in another case name the holder; keys name their owner.
	wantError(t, w.Admin("", "user", "add", "BOB"), `user "BOB" already exists as "bob"`)
	wantError(t, w.Admin("", "org", "create", "ACME"), `as "acme"`)
	wantError(t, w.Admin("", "repo", "create", "acme/WEB"), `as "acme/web"`)
	w.MustAdmin("user", "add", "carol")
	wantError(t, w.Admin("", "key", "add", "carol", k.PubPath), "it is user bob's key")
	wantError(t, w.Admin("", "key", "add", "carol", dk.PubPath), "it is a deploy key of acme/web")

	// No database: say how to point at one.
	wantError(t, w.Admin("", "--data-dir", filepath.Join(w.Root, "nowhere"), "user", "list"), "--data-dir (or CPM_DATA_DIR)")

	// An unreachable server says why.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there now
	wantError(t, w.Admin("", "server", "add", "gone", "--host", "127.0.0.1", "--port", port, "--role", "backup"), "connection refused")

	// repo set: visibility and description, audited, on disk too.
	if out := w.MustAdmin("repo", "set", "acme/web", "--public", "--description", "The web site"); !strings.Contains(out, "public") {
		t.Errorf("repo set: %s", out)
	}
	repos := jsonList(t, w, "repo", "list")
	if repos[0]["public"] != true || repos[0]["description"] != "The web site" {
		t.Errorf("after repo set: %v", repos[0])
	}
	if d, _ := os.ReadFile(filepath.Join(w.RepoDir("acme", "web"), "description")); string(d) != "The web site\n" {
		t.Errorf("description file: %q", d)
	}
	w.MustAdmin("repo", "set", "acme/web", "--private")
	if repos := jsonList(t, w, "repo", "list"); repos[0]["public"] != false || repos[0]["description"] != "The web site" {
		t.Errorf("after repo set --private: %v", repos[0])
	}
	if audit := w.MustAdmin("audit", "--limit", "2"); strings.Count(audit, "repo.set") != 2 {
		t.Errorf("audit:\n%s", audit)
	}
	wantError(t, w.Admin("", "repo", "set", "acme/web"), "nothing to change")
	wantError(t, w.Admin("", "repo", "set", "acme/web", "--public", "--private"), "--private")
	wantError(t, w.Admin("", "repo", "set", "acme/nope", "--public"), "not found")
	wantError(t, w.Admin("", "repo", "set", "acme/web", "--description", "two\nlines"), "one line")

	// Console logs into a pipe carry no colour codes.
	var log syncBuffer
	cmd := exec.Command(bin.Shell, "serve", "--data-dir", w.DataDir, "--listen", "127.0.0.1:0",
		"--git-listen", "127.0.0.1:0", "--log-format", "console")
	cmd.Env = testworld.Env()
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "cpm-shell to serve", func() bool { return strings.Contains(log.String(), "cpm-shell serving") })
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if strings.Contains(log.String(), "\x1b[") {
		t.Errorf("colour codes in a console log written to a pipe:\n%q", log.String())
	}
}

// syncBuffer is a strings.Builder that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
