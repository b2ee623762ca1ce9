package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"cpm/internal/testworld"
)

// go-git (Flux, Argo CD image updaters, many Go tools) hangs up as soon as
// it has read the push report, while receive-pack is still running
// post-receive. The push must still be audited, run the repository's own
// post-receive.d hooks and be replicated at once; through the embedded
// server and through OpenSSH's forced command.
func TestGoGitPushRunsPostReceive(t *testing.T) {
	for _, transport := range []string{"embedded", "openssh"} {
		t.Run(transport, func(t *testing.T) { goGitPush(t, transport) })
	}
}

func goGitPush(t *testing.T, transport string) {
	c := newCompany(t)
	cl, user, knownHosts := c.clients["writer"], "git", c.srv.KnownHosts
	if transport == "openssh" {
		d := c.w.StartSSHD()
		cl, user, knownHosts = d.Client(c.keys["writer"]), d.User, d.KnownHosts
	}
	_, backupPath := backup(t, c.w, "b1")
	onBackup := func(rev string) string { return revParse(filepath.Join(backupPath, "acme", "web.git"), rev) }
	seed := revParse(c.w.RepoDir("acme", "web"), "refs/heads/main")
	waitFor(t, 30*time.Second, "the first sync to the backup", func() bool { return onBackup("main") == seed })

	// The repository's own post-receive.d hook: slow enough that go-git
	// is gone before it ends.
	marker := filepath.Join(c.w.Root, "post-receive-ran")
	hooks := filepath.Join(c.w.RepoDir("acme", "web"), "hooks", "post-receive.d")
	os.MkdirAll(hooks, 0o755)
	// It writes to the client that is gone before it records.
	script := fmt.Sprintf("#!/bin/sh\nsleep 1\necho post-receive; echo post-receive >&2\ncat > %s.tmp && mv %s.tmp %s\n", marker, marker, marker)
	if err := os.WriteFile(filepath.Join(hooks, "10-record"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	commit := goGitPushMain(t, cl, user, knownHosts, "pushed by go-git")
	if got := revParse(c.w.RepoDir("acme", "web"), "refs/heads/main"); got != commit {
		t.Fatalf("main is %s, want %s", got, commit)
	}

	waitFor(t, 20*time.Second, "the repository's post-receive.d hook", func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && strings.Contains(string(b), commit+" refs/heads/main")
	})
	waitFor(t, 10*time.Second, "the push's audit row", func() bool {
		for _, e := range jsonList(t, c.w, "audit", "--limit", "10") {
			if e["action"] == "push" && e["actor"] == "writer" && strings.Contains(fmt.Sprint(e["details"]), commit[:12]) {
				return true
			}
		}
		return false
	})
	// Replicated now, not at the next periodic pass (24 h away).
	waitFor(t, 30*time.Second, "the push on the backup", func() bool { return onBackup("main") == commit })
}

// goGitPushMain clones acme/web with git, commits, and pushes main with
// go-git as user; it returns the commit, with message msg.
func goGitPushMain(t *testing.T, cl *testworld.Client, user, knownHosts, msg string) string {
	t.Helper()
	dir, r := cl.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone: %s", r.Stderr)
	}
	commit := cl.Commit(dir, msg)
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := gitssh.NewPublicKeysFromFile(user, cl.Key.Path, "")
	if err != nil {
		t.Fatal(err)
	}
	if auth.HostKeyCallback, err = gitssh.NewKnownHostsCallback(knownHosts); err != nil {
		t.Fatal(err)
	}
	err = repo.Push(&git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{"refs/heads/main:refs/heads/main"},
		Auth:       auth,
	})
	if err != nil {
		t.Fatalf("go-git push: %v", err)
	}
	return commit
}

// A push that outlives its client is still bounded: by max_session_time,
// and by shutdown's grace.
func TestLingeringPushIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		stop  bool
	}{
		{"max session time", []string{"--max-session-time", "10s"}, false},
		{"shutdown grace", []string{"--grace", "2s"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCompany(t, tc.flags...)
			hooks := filepath.Join(c.w.RepoDir("acme", "web"), "hooks", "post-receive.d")
			os.MkdirAll(hooks, 0o755)
			started, finished := filepath.Join(c.w.Root, "started"), filepath.Join(c.w.Root, "finished")
			script := fmt.Sprintf("#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\nsleep 60\ntouch %s\n", started, started, started, finished)
			if err := os.WriteFile(filepath.Join(hooks, "10-forever"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			goGitPushMain(t, c.clients["writer"], "git", c.srv.KnownHosts, "pushed by go-git")
			waitFor(t, 20*time.Second, "the hook to start", func() bool { _, err := os.Stat(started); return err == nil })
			if tc.stop {
				c.srv.Signal(syscall.SIGTERM)
				if ok, _ := c.srv.Wait(15 * time.Second); !ok {
					t.Fatal("a lingering push held the server past its grace")
				}
			} else {
				waitFor(t, 30*time.Second, "the push's session to end", func() bool {
					for _, line := range strings.Split(c.srv.Log(), "\n") {
						var ev map[string]any
						if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] == "session" &&
							ev["user"] == "writer" && ev["command"] == "git-receive-pack" {
							return true
						}
					}
					return false
				})
			}
			b, _ := os.ReadFile(started)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("hook pid %q: %v", b, err)
			}
			waitFor(t, 10*time.Second, "the hook to be killed", func() bool { return !alive(pid) })
			if _, err := os.Stat(finished); err == nil {
				t.Error("the hook ran to its end")
			}
		})
	}
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
