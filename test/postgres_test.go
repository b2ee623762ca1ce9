package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// postgresSet is the end-to-end tests that `make test` runs on PostgreSQL
// as well as on SQLite (the Test… ones; the others exist for PostgreSQL
// only); CPM_TEST_DATABASE=postgres runs every test there. The set:
// the admin commands, the gateway with permissions over both ssh roads,
// hooks and protected refs, the audit of a push, LFS locks and
// certificates, replication to a backup and to a neighbour (with the
// authorization metadata it serves reads by). TestNeighborDiscoverLocal
// cannot run there: it runs in a network namespace of its own, away from
// the test's PostgreSQL on loopback.
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
	{"NeighborReplicasServeReads", TestNeighborReplicasServeReadsWithTheOriginsPermissions},
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
	// The recorded database is what every command uses: config show says
	// so, with the password masked.
	var shown []struct{ Key, Value, Source string }
	json.Unmarshal([]byte(w.MustAdmin("config", "show", "--json")), &shown)
	for _, v := range shown {
		if v.Key == "database" && (v.Source != "data dir" || !strings.HasPrefix(v.Value, "postgres://cpm:") || !strings.Contains(v.Value, "127.0.0.1")) {
			t.Errorf("config show: database %+v, want the recorded URL from the data dir", v)
		}
	}
	w.MustAdmin("user", "add", "alice")
	if out := w.MustAdmin("--database", w.Database, "user", "list"); !strings.Contains(out, "alice") {
		t.Errorf("--database sees another database: %s", out)
	}
	r := w.Admin("", "doctor", "--json")
	var findings []struct {
		Check  string
		OK     bool
		Detail string
	}
	json.Unmarshal([]byte(r.Stdout), &findings)
	seen := 0
	for _, f := range findings {
		switch f.Check {
		case "database":
			seen++
			if !f.OK || !strings.Contains(f.Detail, "PostgreSQL 1") || !strings.Contains(f.Detail, "schema version") {
				t.Errorf("doctor: %+v", f)
			}
		case "file modes", "database integrity":
			if !f.OK {
				t.Errorf("doctor: %+v", f)
			}
		}
	}
	if seen != 1 || strings.Contains(r.Stdout, pg.Password()) {
		t.Errorf("doctor on PostgreSQL:\n%s%s", r.Stdout, r.Stderr)
	}
	srv := w.StartServer()
	srv.Stop()
	if log := srv.Log(); strings.Contains(log, pg.Password()) || !strings.Contains(log, "xxxxx@127.0.0.1") {
		t.Errorf("the server's log shows the password, or not the database:\n%s", log)
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

// migrate-store copies a running SQLite installation into PostgreSQL;
// after init --database the node serves from PostgreSQL alone, with the
// same users, permissions and protected refs.
func TestMigrateStoreToPostgres(t *testing.T) {
	c := newCompany(t)
	w := c.w
	url := pg.Database(t)
	out := w.MustAdmin("migrate-store", "--to", url)
	if strings.Contains(out, pg.Password()) || !strings.Contains(out, "every count matches") {
		t.Errorf("migrate-store printed:\n%s", out)
	}
	r := w.Admin("", "migrate-store", "--to", url, "--json")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not empty") {
		t.Errorf("second migrate-store into the same database: exit %d %s", r.Code, r.Stderr)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] != "TABLE" && f[1] != f[2] {
			t.Errorf("counts differ: %s", line)
		}
	}
	c.srv.Stop()
	w.MustAdmin("init", "--database", url)
	// The SQLite file is out of the way: everything below is PostgreSQL.
	if err := os.Rename(filepath.Join(w.DataDir, "cpm.db"), filepath.Join(w.Root, "old.db")); err != nil {
		t.Fatal(err)
	}
	if out := w.MustAdmin("user", "list"); !strings.Contains(out, "writer") || !strings.Contains(out, "siteadmin") {
		t.Errorf("users after the switch:\n%s", out)
	}
	srv := w.StartServer()
	writer, reader := srv.Client(c.keys["writer"]), srv.Client(c.keys["reader"])
	dir, res := writer.Clone("acme/web")
	if res.Code != 0 {
		t.Fatalf("clone after the switch: %s", res.Stderr)
	}
	writer.Commit(dir, "after the switch")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	if r := writer.Git(dir, "push", "-q", "-f", "origin", "HEAD~1:main"); r.Code == 0 {
		t.Error("a forced push to a protected branch went through after the switch")
	}
	rdir, _ := reader.Clone("acme/web")
	if r := reader.Git(rdir, "push", "-q", "origin", "HEAD:refs/heads/x"); r.Code == 0 {
		t.Error("a reader pushed after the switch")
	}
	if out := w.MustAdmin("audit", "--limit", "5"); !strings.Contains(out, "push") {
		t.Errorf("the push is not audited in PostgreSQL:\n%s", out)
	}
}
