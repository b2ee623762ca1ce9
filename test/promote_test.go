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
	writer.Commit(dir, "before the loss")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	// And a Git LFS object, which must survive the loss with the rest.
	lw := newLFSClient(t, writer)
	ldir, _ := lw.clone("acme/web")
	oid := lw.addLFSFile(ldir, "asset.bin", 50_000)
	lw.mustGit(ldir, "push", "-q", "origin", "HEAD:main")
	commit := revParse(ldir, "HEAD")
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
	if !strings.Contains(out, "2 repositories") || !strings.Contains(out, "removed b1 from the server list: that is this node") {
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
	if servers := jsonList(t, promoted, "server", "list"); len(servers) != 0 {
		t.Errorf("servers after promote: %v (the backup itself should be gone)", servers)
	}
	lr := newLFSClient(t, p.clients["reader"])
	rdir, r := lr.clone("acme/web")
	if got, _ := os.ReadFile(filepath.Join(rdir, "asset.bin")); r.Code != 0 || sha256Hex(got) != oid {
		t.Errorf("LFS content from the promoted server: %d bytes, %s", len(got), r.Stderr)
	}
}

// TestPromoteFencesTheOldMain: the old main comes back after its backup
// was promoted. It writes nothing there, neither through its key (fenced
// in authorized_keys) nor, with the key put back, past the marker; its
// server list says why.
func TestPromoteFencesTheOldMain(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("b1")
	path := filepath.Join(c.w.Root, "b1-replicas")
	c.w.MustAdmin("server", "add", "b1", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey(), "--authorized-keys", d.AuthorizedKeys)
	waitFor(t, 30*time.Second, "the replicas and the snapshot on the backup", func() bool {
		_, err := os.Stat(filepath.Join(path, ".cpm", "origin-keys"))
		return err == nil && revParse(filepath.Join(path, "acme", "web.git"), "main") == c.main &&
			revParse(filepath.Join(path, "acme", "pub.git"), "main") != ""
	})
	c.srv.Stop() // the main goes away for a while

	promoted := &testworld.World{T: t, Bin: bin, Root: t.TempDir(), DataDir: path}
	out := promoted.MustAdmin("promote")
	if !strings.Contains(out, "removed b1") || !strings.Contains(out, "fenced the old main") {
		t.Errorf("promote: %s", out)
	}
	ak, _ := os.ReadFile(d.AuthorizedKeys)
	if !strings.Contains(string(ak), `restrict,command="printf 'cpm-promoted:`) {
		t.Errorf("the old main's key is not fenced:\n%s", ak)
	}
	if _, err := os.Stat(filepath.Join(path, ".cpm", "promoted")); err != nil {
		t.Errorf("no promoted marker: %v", err)
	}
	if r := promoted.Admin("", "doctor"); strings.Contains(r.Stdout, "b1") {
		t.Errorf("doctor on the promoted node still knows the backup b1:\n%s", r.Stdout)
	}
	snapshot := filepath.Join(path, ".cpm", "cpm.db")
	before, _ := os.Stat(snapshot)

	// The old main comes back and takes a push.
	srv := c.w.StartServer()
	writer := srv.Client(c.keys["writer"])
	push := func(msg string) {
		dir, r := writer.Clone("acme/web")
		if r.Code != 0 {
			t.Fatalf("clone from the old main: %s", r.Stderr)
		}
		writer.Commit(dir, msg)
		writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	}
	fenced := func(why string) {
		t.Helper()
		waitFor(t, 30*time.Second, "the old main to block b1 ("+why+")", func() bool {
			r, _ := serverRow(t, c, "b1")["blocked_reason"].(string)
			return strings.Contains(r, "promoted on ") && strings.Contains(r, "this node is no longer its main")
		})
		if _, err := os.Stat(filepath.Join(path, "acme")); !os.IsNotExist(err) {
			t.Fatalf("the old main wrote into the promoted node (%s): %v", why, err)
		}
		if got := revParse(filepath.Join(path, "repos", "acme", "web.git"), "main"); got != c.main {
			t.Fatalf("main on the promoted node moved (%s): %s", why, got)
		}
		if after, err := os.Stat(snapshot); err != nil || !after.ModTime().Equal(before.ModTime()) {
			t.Fatalf("the old main sent a database snapshot (%s): %v", why, err)
		}
	}
	push("after the promotion")
	fenced("key fenced")
	wantError(t, c.w.Admin("", "server", "check", "b1"), "promoted on")

	// Even with its key back in place, the marker stops the old main.
	os.WriteFile(d.AuthorizedKeys, []byte(strings.TrimSpace(c.w.MustAdmin("server", "pubkey"))+"\n"), 0o600)
	c.w.MustAdmin("sync", "retry")
	push("with the key back")
	fenced("marker only")
}

func TestPromoteRefusesWhatIsNotABackup(t *testing.T) {
	w := testworld.New(t, bin)
	wantError(t, w.Admin("", "promote", "--from", t.TempDir()), "no database snapshot")
	wantError(t, w.Admin("", "promote", "--from", "/nonexistent"), "no database snapshot")
}
