package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// postgresSet is the end-to-end tests that `make test` runs on PostgreSQL
// as well as on SQLite (CPM_TEST_DATABASE=postgres runs them all there):
// the admin commands, the gateway with permissions over both ssh roads,
// hooks and protected refs, the audit of a push, LFS locks and
// certificates.
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
