package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cpm/internal/store"
)

// TestSnapshotWithoutRsync: a backup without rsync gets the database
// snapshot by tar, as it gets the repositories, so that a promote there
// has every user; a delivery that fails shows in server list, doctor and
// the failure metric, and clears once a delivery succeeds.
func TestSnapshotWithoutRsync(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("tarbackup", "SetEnv PATH="+c.w.PathWithout("rsync"))
	path := filepath.Join(c.w.Root, "tar-replicas")
	c.w.MustAdmin("server", "add", "tb", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey())
	snapshot := filepath.Join(path, ".cpm", "cpm.db")
	waitFor(t, 30*time.Second, "the database snapshot on the backup", func() bool { return snapshotHas(t, snapshot, "owner") })
	if row := serverRow(t, c, "tb"); row["meta_error"] != nil {
		t.Errorf("server list after a delivery: %v", row)
	}

	// origin-keys as a folder: the next delivery fails on the backup.
	keys := filepath.Join(path, ".cpm", "origin-keys")
	os.Remove(keys)
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	c.w.MustAdmin("user", "add", "newcomer", "--key", c.w.NewKey("newcomer").PubPath)
	waitFor(t, 30*time.Second, "the failed delivery in server list", func() bool {
		row := serverRow(t, c, "tb")
		return row["state"] == "retrying" && strings.Contains(row["cause"].(string), "deliver snapshot to tb")
	})
	if r := c.w.Admin("", "doctor"); r.Code == 0 || !strings.Contains(r.Stdout, "tb: retrying: deliver snapshot to tb") {
		t.Errorf("doctor with a failing snapshot delivery (exit %d):\n%s", r.Code, r.Stdout)
	}
	m := metricsText(t, c.srv.MetricsAddr)
	for _, want := range []string{`cpm_replication_failures_total{cause="metadata",target="tb"}`, `cpm_replication_target_state{state="retrying",target="tb"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "tb"))
		}
	}

	// Mended: the next delivery brings the newcomer, and all is well again.
	os.Remove(keys)
	waitFor(t, 60*time.Second, "the snapshot with the newcomer", func() bool { return snapshotHas(t, snapshot, "newcomer") })
	waitFor(t, 30*time.Second, "tb ok", func() bool { return serverRow(t, c, "tb")["state"] == "ok" })
}

// snapshotHas reports whether the database snapshot at path opens and
// knows the user named name.
func snapshotHas(t *testing.T, path, name string) bool {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return false
	}
	// A copy: opening it may migrate it, and the backup's file stays as
	// it came.
	cp := filepath.Join(t.TempDir(), "cpm.db")
	b, err := os.ReadFile(path)
	if err != nil || os.WriteFile(cp, b, 0o600) != nil {
		return false
	}
	ctx := context.Background()
	s, err := store.Open(ctx, cp)
	if err != nil {
		t.Logf("snapshot does not open: %v", err)
		return false
	}
	defer s.Close()
	users, err := s.Users(ctx)
	if err != nil {
		return false
	}
	for _, u := range users {
		if u.Name == name {
			return true
		}
	}
	return false
}

// TestCheckReconnects: server check reaches the server now, not through
// a connection that a sync kept open after the server's sshd stopped.
func TestCheckReconnects(t *testing.T) {
	c := newCompany(t)
	d, path := backup(t, c.w, "b1")
	waitFor(t, 30*time.Second, "the first sync", func() bool { return revParse(filepath.Join(path, "acme", "web.git"), "main") != "" })
	c.w.MustAdmin("server", "check", "b1")
	if socks, _ := filepath.Glob(filepath.Join(c.w.DataDir, "ssh", "b1@*")); len(socks) == 0 {
		t.Fatal("no kept-open connection to b1: the test would prove nothing")
	}
	d.StopListening() // systemctl stop ssh: open connections stay
	if r := c.w.Admin("", "server", "check", "b1"); r.Code == 0 {
		t.Errorf("server check passed with b1's sshd stopped:\n%s", r.Stdout)
	}
	if r := c.w.Admin("", "doctor"); r.Code == 0 || !strings.Contains(r.Stdout, "b1: ") {
		t.Errorf("doctor passed with b1's sshd stopped (exit %d):\n%s", r.Code, r.Stdout)
	}
}

// TestDiskFullHoldsSync: a backup with less free space than a sync needs
// plus free_space_margin is held before anything is copied, with the
// cause in sync status, server list and the failure metric. The margin
// (1 PiB) is what makes the real, measured free space too little: no
// test can fill a real disk.
func TestDiskFullHoldsSync(t *testing.T) {
	c := newCompany(t, "--free-space-margin", "1PiB")
	_, path := backup(t, c.w, "b1")
	waitFor(t, 30*time.Second, "the sync held for space", func() bool {
		j := jobOf(t, c, "acme/web", "b1")
		return j != nil && strings.HasPrefix(j["last_error"].(string), "disk full: ")
	})
	j := jobOf(t, c, "acme/web", "b1")
	if !regexp.MustCompile(`^disk full: \d+ MiB free, needs \d+ MiB`).MatchString(j["last_error"].(string)) {
		t.Errorf("sync status: %v", j)
	}
	row := serverRow(t, c, "b1")
	if row["state"] != "retrying" || !strings.HasPrefix(row["cause"].(string), "disk full: ") || !strings.Contains(row["fix"].(string), "free space on b1") {
		t.Errorf("server list: %v", row)
	}
	if packs, _ := filepath.Glob(filepath.Join(path, "acme", "web.git", "objects", "pack", "*")); len(packs) > 0 {
		t.Errorf("objects were copied to a full disk: %v", packs)
	}
	if m := metricsText(t, c.srv.MetricsAddr); !strings.Contains(m, `cpm_replication_failures_total{cause="disk_full",target="b1"}`) {
		t.Errorf("metrics:\n%s", grepLines(m, "b1"))
	}
	// By hand, the configured margin holds too.
	conf := filepath.Join(c.w.Root, "margin.yaml")
	if err := os.WriteFile(conf, []byte("free_space_margin: 1PiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.w.Admin("", "--config", conf, "sync", "push", "acme/web", "--to", "b1"); r.Code == 0 || !strings.Contains(r.Stderr, "disk full: ") {
		t.Errorf("sync push by hand with a 1PiB margin: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestDiskFullHoldsSyncToNeighbour: a neighbour answers cpm-peer space
// with its free space and the replica's object files; the origin holds
// the sync back as for a backup.
func TestDiskFullHoldsSyncToNeighbour(t *testing.T) {
	n := newTwoNodes(t, "--free-space-margin", "1PiB")
	n.approve(t)
	waitFor(t, 30*time.Second, "the sync to B held for space", func() bool {
		j := jobOf(t, n.company, "acme/web", n.bName)
		return j != nil && regexp.MustCompile(`^disk full: \d+ MiB free, needs \d+ MiB`).MatchString(j["last_error"].(string))
	})
	if packs, _ := filepath.Glob(filepath.Join(n.b.RepoDir("acme", "web"), "objects", "pack", "*.pack")); len(packs) > 0 {
		t.Errorf("objects were copied to a full disk: %v", packs)
	}
}
