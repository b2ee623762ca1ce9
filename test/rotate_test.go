package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

func TestKeyRotationWithABackupDown(t *testing.T) {
	c := newCompany(t)
	type backupServer struct {
		d    *testworld.SSHD
		path string
	}
	bs := map[string]backupServer{}
	for _, name := range []string{"b1", "b2"} {
		d := c.w.StartBackupSSHD(name)
		path := filepath.Join(c.w.Root, name+"-replicas")
		c.w.MustAdmin("server", "add", name, "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
			"--path", path, "--role", "backup", "--host-key", d.HostKey(), "--authorized-keys", d.AuthorizedKeys)
		bs[name] = backupServer{d, path}
	}
	web := func(b string) string { return revParse(filepath.Join(bs[b].path, "acme", "web.git"), "main") }
	waitFor(t, 30*time.Second, "both backups", func() bool { return web("b1") == c.main && web("b2") == c.main })
	oldKey := strings.Fields(c.w.MustAdmin("server", "pubkey"))[1]

	// b2 is down during the switch.
	bs["b2"].d.Stop()
	out := c.w.MustAdmin("server", "rotate-key")
	if !strings.Contains(out, "rotation under way") {
		t.Fatalf("rotate-key with b2 down: %s", out)
	}
	servers := jsonList(t, c.w, "server", "list")
	state := map[string]any{}
	for _, s := range servers {
		state[s["name"].(string)] = s["key_state"]
	}
	if state["b1"] != "done" || state["b2"] != nil {
		t.Errorf("key states after the first pass: %v", state)
	}
	newKey := ""
	if b, err := os.ReadFile(filepath.Join(c.w.DataDir, "id_ed25519_replication.next.pub")); err == nil {
		newKey = strings.Fields(string(b))[1]
	}
	ak1, _ := os.ReadFile(bs["b1"].d.AuthorizedKeys)
	if newKey == "" || !strings.Contains(string(ak1), newKey) || strings.Contains(string(ak1), oldKey) {
		t.Fatalf("b1's authorized_keys after the switch (new %s):\n%s", newKey, ak1)
	}

	// b1 keeps replicating, with the new key.
	writer := c.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "during the rotation")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "b1 with the new key", func() bool { return web("b1") == commit })

	// b2 comes back with only the old key: it keeps working, switches, and
	// the rotation finishes on its own.
	bs["b2"].d.Restart()
	waitFor(t, 60*time.Second, "the rotation to finish", func() bool {
		pub, _ := os.ReadFile(filepath.Join(c.w.DataDir, "id_ed25519_replication.pub"))
		return strings.Contains(string(pub), newKey)
	})
	waitFor(t, 30*time.Second, "b2 to catch up", func() bool { return web("b2") == commit })
	ak2, _ := os.ReadFile(bs["b2"].d.AuthorizedKeys)
	if !strings.Contains(string(ak2), newKey) || strings.Contains(string(ak2), oldKey) {
		t.Errorf("b2's authorized_keys after the rotation:\n%s", ak2)
	}
	if _, err := os.Stat(filepath.Join(c.w.DataDir, "id_ed25519_replication.next")); err == nil {
		t.Error("the next key file is still there")
	}
	for _, s := range jsonList(t, c.w, "server", "list") {
		if s["key_state"] != nil {
			t.Errorf("%s still in a rotation: %v", s["name"], s["key_state"])
		}
	}
	if fi, err := os.Stat(filepath.Join(c.w.DataDir, "id_ed25519_replication")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v", fi.Mode().Perm(), err)
	}
	// Nobody was locked out: a push after the rotation reaches both.
	commit = writer.Commit(dir, "after the rotation")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "both backups after the rotation", func() bool { return web("b1") == commit && web("b2") == commit })
	if out := c.w.MustAdmin("audit", "--limit", "50"); !strings.Contains(out, "server.rotate-key") {
		t.Errorf("rotation not audited: %s", out)
	}
}

// A wrong authorized_keys path is reported, and nothing is written there.
func TestKeyRotationNeedsTheRightAuthorizedKeys(t *testing.T) {
	c := newCompany(t)
	d, _ := backup(t, c.w, "b1") // added without --authorized-keys
	home, _ := os.UserHomeDir()
	before, _ := os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys"))
	// A server that answers but refuses the switch fails the command.
	r := c.w.Admin("", "server", "rotate-key")
	wantError(t, r, "is not in .ssh/authorized_keys")
	if !strings.Contains(r.Stdout, "rotation under way") {
		t.Fatalf("rotate-key with the wrong path: %s", r.Stdout)
	}
	if after, _ := os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys")); string(after) != string(before) {
		t.Fatal("rotate-key wrote to a file sshd does not read")
	}
	c.w.MustAdmin("server", "set", "b1", "--authorized-keys", d.AuthorizedKeys)
	if out := c.w.MustAdmin("server", "rotate-key"); !strings.Contains(out, "rotation finished") {
		t.Fatalf("rotate-key with the right path: %s", out)
	}
	wantError(t, c.w.Admin("", "server", "set", "b1", "--authorized-keys", "../../etc/passwd"), "authorized-keys")
}

// TestKeyRotationRefused: a backup that answers but cannot take the new
// key (its authorized_keys is not where cpm was told) makes rotate-key
// fail with the cause, and doctor reports the unfinished rotation, until
// the path is fixed.
func TestKeyRotationRefused(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("b1")
	path := filepath.Join(c.w.Root, "b1-replicas")
	c.w.MustAdmin("server", "add", "b1", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey(), "--authorized-keys", filepath.Join(c.w.Root, "not-authorized_keys"))
	waitFor(t, 30*time.Second, "the backup", func() bool { return revParse(filepath.Join(path, "acme", "web.git"), "main") == c.main })

	r := c.w.Admin("", "server", "rotate-key")
	wantError(t, r, "refuse the new key (b1: install the new key: ")
	if !strings.Contains(r.Stderr, "not-authorized_keys") {
		t.Errorf("rotate-key does not name the file: %s", r.Stderr)
	}
	doc := c.w.Admin("", "doctor")
	if doc.Code == 0 || !strings.Contains(doc.Stdout, "FAIL  key rotation") || !strings.Contains(doc.Stdout, "not switched yet: b1") {
		t.Errorf("doctor during a stuck rotation (exit %d):\n%s", doc.Code, doc.Stdout)
	}

	c.w.MustAdmin("server", "set", "b1", "--authorized-keys", d.AuthorizedKeys)
	if out := c.w.MustAdmin("server", "rotate-key"); !strings.Contains(out, "rotation finished") {
		t.Errorf("rotate-key after the fix: %s", out)
	}
	if doc := c.w.Admin("", "doctor"); !strings.Contains(doc.Stdout, "ok    key rotation") {
		t.Errorf("doctor after the rotation:\n%s", doc.Stdout)
	}
}
