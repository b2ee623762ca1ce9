package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// postgresSet is the end-to-end tests that `make test` runs on PostgreSQL
// as well as on SQLite (those named Test…; the others are PostgreSQL's own) (CPM_TEST_DATABASE=postgres runs them all there):
// the admin commands, the gateway with permissions over both ssh roads,
// hooks and protected refs, the audit of a push, LFS locks and
// certificates, replication to a backup.
var postgresSet = []struct {
	name string
	test func(*testing.T)
}{
	{"AdminLifecycle", TestAdminLifecycle},
	{"OwnersAreNeverLost", TestOwnersAreNeverLost},
	{"ErrorsAndExitCodes", TestErrorsAndExitCodes},
	{"RolesOverSSH", TestRolesOverSSH},
	{"RolesOverOpenSSH", TestRolesOverOpenSSH},
	{"PushIsAudited", TestPushIsAudited},
	{"LFS", TestLFS},
	{"Certificates", TestCertificates},
	{"ReplicationToBackup", TestReplicationToBackup},
	{"BackupHoldsRepositoriesOnly", testBackupHoldsRepositoriesOnly},
}

func TestOnPostgres(t *testing.T) {
	if os.Getenv("CPM_TEST_DATABASE") == "postgres" {
		t.Skip("every test runs on PostgreSQL already")
	}
	sqliteBin := bin
	bin = bin.OnDatabase(pg.Database)
	defer func() { bin = sqliteBin }()
	for _, tt := range postgresSet {
		t.Run(tt.name, tt.test)
	}
}

// A data directory initialised on PostgreSQL holds no SQLite database,
// records the URL for cpm-hook privately, and no command shows the
// password.
func TestPostgresSettingIsPrivate(t *testing.T) {
	w := testworld.New(t, bin.OnDatabase(pg.Database))
	if _, err := os.Stat(filepath.Join(w.DataDir, "cpm.db")); err == nil {
		t.Error("init --database made a SQLite database too")
	}
	fi, err := os.Stat(filepath.Join(w.DataDir, "database"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recorded setting: %v %v", fi, err)
	}
	for _, args := range [][]string{
		{"config", "show"},
		{"config", "show", "--json"},
		{"--database", w.Database, "config", "show"},
		{"--database", w.Database, "user", "list"},
		{"--database", strings.Replace(w.Database, pg.Password(), "wrong"+pg.Password(), 1), "user", "list"},
		{"--database", "host=127.0.0.1 password=" + pg.Password(), "user", "list"},
	} {
		r := w.Admin("", args...)
		if strings.Contains(r.Stdout+r.Stderr, pg.Password()) {
			t.Errorf("cpm-admin %s shows the password: %s %s", args[0], r.Stdout, r.Stderr)
		}
	}
	w.MustAdmin("user", "add", "alice")
	if out := w.MustAdmin("--database", w.Database, "user", "list"); !strings.Contains(out, "alice") {
		t.Errorf("--database sees another database: %s", out)
	}
}

// With PostgreSQL a backup receives the repositories and a pointer to the
// database (no password), never a snapshot; promote says where the
// metadata lives.
func testBackupHoldsRepositoriesOnly(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	c.w.MustAdmin("sync", "push", "acme/web", "--to", "b1")
	pointer := filepath.Join(path, ".cpm", "database")
	waitFor(t, 20*time.Second, "the database pointer on the backup", func() bool {
		_, err := os.Stat(pointer)
		return err == nil
	})
	b, _ := os.ReadFile(pointer)
	if strings.Contains(string(b), pg.Password()) || !strings.Contains(string(b), "postgres://") {
		t.Errorf("pointer %q", b)
	}
	if _, err := os.Stat(filepath.Join(path, ".cpm", "cpm.db")); err == nil {
		t.Error("the backup received a SQLite snapshot")
	}
	if _, err := os.Stat(filepath.Join(path, "acme", "web.git", "HEAD")); err != nil {
		t.Errorf("the backup lacks the repository: %v", err)
	}
	r := c.w.Admin("", "--data-dir", filepath.Join(c.w.Root, "promoted"), "promote", "--from", path)
	if r.Code == 0 || !strings.Contains(r.Stderr, "lives in PostgreSQL") || strings.Contains(r.Stderr, pg.Password()) {
		t.Errorf("promote: exit %d: %s", r.Code, r.Stderr)
	}
}
