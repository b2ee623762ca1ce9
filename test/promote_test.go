package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// snapshotUsers reads the users in a backup's database snapshot, through a
// copy (cpm-admin migrates what it opens; the snapshot stays untouched).
func snapshotUsers(t *testing.T, snapshot string) string {
	t.Helper()
	body, err := os.ReadFile(snapshot)
	if err != nil {
		return ""
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpm.db"), body, 0o600)
	out, err := exec.Command(bin.Admin, "--data-dir", dir, "user", "list").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func TestPromoteBackupAfterTheMainServerIsLost(t *testing.T) {
	c := newCompany(t)
	d, path := backup(t, c.w, "b1")
	snapshot := filepath.Join(path, ".cpm", "cpm.db")
	writer := c.clients["writer"]
	dir, _ := writer.Clone("acme/web")
	commit := writer.Commit(dir, "before the loss")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	waitFor(t, 30*time.Second, "the push on the backup", func() bool {
		return revParse(filepath.Join(path, "acme", "web.git"), "main") == commit &&
			revParse(filepath.Join(path, "acme", "pub.git"), "main") != ""
	})
	// Every change reaches the backup as a consistent database snapshot.
	late := c.w.NewKey("late")
	c.w.MustAdmin("user", "add", "late", "--key", late.PubPath)
	waitFor(t, 30*time.Second, "the snapshot with the last change", func() bool {
		return strings.Contains(snapshotUsers(t, snapshot), "late")
	})
	if fi, err := os.Stat(snapshot); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot on the backup: %v %v", fi.Mode(), err)
	}

	// The main server dies with its data.
	c.srv.Stop()
	if err := os.RemoveAll(c.w.DataDir); err != nil {
		t.Fatal(err)
	}
	d.Stop()

	// Promote the backup in place and serve it.
	promoted := &testworld.World{T: t, Bin: bin, Root: t.TempDir(), DataDir: path}
	out := promoted.MustAdmin("promote")
	if !strings.Contains(out, "2 repositories") || !strings.Contains(out, "held 1 servers (b1)") {
		t.Errorf("promote: %s", out)
	}
	wantError(t, promoted.Admin("", "promote"), "already has a database")
	srv := promoted.StartServer()
	p := &company{w: promoted, srv: srv, keys: c.keys, clients: map[string]*testworld.Client{}}
	for name, k := range c.keys {
		p.clients[name] = srv.Client(k)
	}
	// Every permission is intact: the whole role matrix, on the new server.
	roleMatrix(t, p, p.clients)
	if r := srv.Client(late).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "late" {
		t.Errorf("a user added just before the loss: %q %s", r.Stdout, r.Stderr)
	}
	cl, r := p.clients["reader"].Clone("acme/web")
	if r.Code != 0 || revParse(cl, "HEAD") == "" {
		t.Fatalf("clone from the promoted server: %s", r.Stderr)
	}
	if revParse(cl, "origin/main") != commit {
		// roleMatrix pushed to other branches only; main is the one pushed above.
		t.Errorf("main on the promoted server: %s, want %s", revParse(cl, "origin/main"), commit)
	}
	if servers := jsonList(t, promoted, "server", "list"); len(servers) != 1 || servers[0]["blocked_reason"] == "" {
		t.Errorf("servers after promote: %v", servers)
	}
}

func TestPromoteRefusesWhatIsNotABackup(t *testing.T) {
	w := testworld.New(t, bin)
	wantError(t, w.Admin("", "promote", "--from", t.TempDir()), "no database snapshot")
	wantError(t, w.Admin("", "promote", "--from", "/nonexistent"), "no database snapshot")
}
