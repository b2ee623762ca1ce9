package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverRow is NAME's row of server list --json.
func serverRow(t *testing.T, c *company, name string) map[string]any {
	t.Helper()
	for _, s := range jsonList(t, c.w, "server", "list") {
		if s["name"] == name {
			return s
		}
	}
	t.Fatalf("server %s is not listed", name)
	return nil
}

// TestPinsArePerServer: two servers on one sshd, one pinned with its real
// host key and one with another key. Only the first is written to; the
// second is blocked with the mismatch until it is re-pinned, and a server
// removed and added again under a wrong key is refused at once, not
// served by the connection ssh kept open for its old entry.
func TestPinsArePerServer(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("shared")
	goodPath := filepath.Join(c.w.Root, "good-replicas")
	evilPath := filepath.Join(c.w.Root, "evil-replicas")
	add := func(name, path, hostKey string) {
		c.w.MustAdmin("server", "add", name, "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
			"--path", path, "--role", "backup", "--host-key", hostKey)
	}
	add("good", goodPath, d.HostKey())
	add("evil", evilPath, c.w.NewKey("not-the-host-key").Public)

	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "pinned per server")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "the good server's replica", func() bool {
		return revParse(filepath.Join(goodPath, "acme", "web.git"), "refs/heads/main") == commit
	})
	waitFor(t, 30*time.Second, "the wrongly pinned server to be blocked", func() bool {
		r, _ := serverRow(t, c, "evil")["blocked_reason"].(string)
		return strings.Contains(r, "Host key verification failed")
	})
	if _, err := os.Stat(evilPath); !os.IsNotExist(err) {
		t.Fatalf("a server pinned with the wrong key was written to: %v", err)
	}
	wantError(t, c.w.Admin("", "server", "check", "evil"), "Host key verification failed")
	if out := c.w.MustAdmin("server", "check", "good"); !strings.Contains(out, "writable: yes") {
		t.Errorf("server check good: %s", out)
	}

	// Re-pinning with the key fetched from the server lifts the block.
	out := c.w.MustAdmin("server", "set", "evil", "--host-key", "", "--yes")
	if !strings.Contains(out, "presents host key SHA256:") || !strings.Contains(out, "pinned") {
		t.Errorf("server set --host-key '': %s", out)
	}
	if r, _ := serverRow(t, c, "evil")["blocked_reason"].(string); r != "" {
		t.Errorf("still blocked after re-pinning: %s", r)
	}
	c.w.MustAdmin("sync", "retry") // wakes the workers now, not at the next tick
	waitFor(t, 30*time.Second, "the re-pinned server's replica", func() bool {
		return revParse(filepath.Join(evilPath, "acme", "web.git"), "refs/heads/main") == commit
	})

	// `server check good` left a master connection open (ControlPersist);
	// a server of the same name added again with a wrong key must not
	// ride on it.
	c.w.MustAdmin("server", "check", "good")
	c.w.MustAdmin("server", "remove", "good")
	add("good", goodPath, c.w.NewKey("wrong-again").Public)
	wantError(t, c.w.Admin("", "server", "check", "good"), "Host key verification failed")

	// A bad line is refused and changes nothing.
	wantError(t, c.w.Admin("", "server", "set", "evil", "--host-key", "not a key"), "host key")
	if out := c.w.MustAdmin("server", "check", "evil"); !strings.Contains(out, "writable: yes") {
		t.Errorf("server check evil after a refused re-pin: %s", out)
	}
}
