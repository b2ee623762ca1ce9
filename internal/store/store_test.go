package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var admin = Actor{Name: "local:test"}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Init(context.Background(), filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newPostgresStore is newStore on a fresh database of the test server.
func newPostgresStore(t *testing.T) *Store {
	t.Helper()
	s, err := InitAt(context.Background(), pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// onBoth runs a test once on each engine, as subtests sqlite and postgres.
func onBoth(t *testing.T, test func(*testing.T, func(*testing.T) *Store)) {
	t.Run("sqlite", func(t *testing.T) { test(t, newStore) })
	t.Run("postgres", func(t *testing.T) { test(t, newPostgresStore) })
}

func key(fp string) *NewKey {
	return &NewKey{Fingerprint: "SHA256:" + fp, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA" + fp}
}

func TestInitIsIdempotentAndPrivate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "cpm.db")
	for range 2 {
		s, err := Init(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Version(ctx)
		if err != nil || v != SchemaVersion() {
			t.Fatalf("version %d, %v; want %d", v, err, SchemaVersion())
		}
		var mode string
		s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		var fk int
		s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk)
		if mode != "wal" || fk != 1 {
			t.Errorf("journal_mode=%s foreign_keys=%d", mode, fk)
		}
		s.Close()
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenMissingDatabase(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "cpm.db"))
	if !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("got %v, want ErrNoDatabase", err)
	}
}

func TestOpenMigratesOldAndRefusesNewer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cpm.db")
	// A version-0 database: the file exists, nothing has been applied yet.
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("CREATE TABLE keepme (x)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open old database: %v", err)
	}
	if v, _ := s.Version(ctx); v != SchemaVersion() {
		t.Fatalf("not migrated: version %d", v)
	}
	if _, err := s.db.db.Exec("SELECT x FROM keepme"); err != nil {
		t.Errorf("migration lost a table: %v", err)
	}
	if _, err := s.db.db.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: got %v", err)
	}
}

func TestUsersAndKeys(t *testing.T) { onBoth(t, testUsersAndKeys) }

func testUsersAndKeys(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateUser(ctx, admin, "alice", true, key("a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, admin, "ALICE", false, nil); !errors.Is(err, ErrExists) {
		t.Errorf("case-folded duplicate user: %v", err)
	}
	// The same key for a second user: refused, and the user is not created.
	if _, err := s.CreateUser(ctx, admin, "bob", false, key("a1")); !errors.Is(err, ErrExists) {
		t.Errorf("shared key: %v", err)
	}
	if _, err := s.UserByName(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob exists after a failed add: %v", err)
	}
	if _, err := s.AddUserKey(ctx, admin, "alice", *key("a2")); err != nil {
		t.Fatal(err)
	}
	keys, err := s.UserKeys(ctx, "alice")
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	o, err := s.KeyOwnerByFingerprint(ctx, "SHA256:a2")
	if err != nil || o.User != "alice" || !o.SiteAdmin {
		t.Fatalf("owner %+v, %v", o, err)
	}
	if _, err := s.DeleteUserKey(ctx, admin, "SHA256:a2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyOwnerByFingerprint(ctx, "SHA256:a2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed key still found: %v", err)
	}
	if err := s.DeleteUser(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyOwnerByFingerprint(ctx, "SHA256:a1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("key of removed user still found: %v", err)
	}
}

func TestDeployKeys(t *testing.T) { onBoth(t, testDeployKeys) }

func testDeployKeys(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateUser(ctx, admin, "alice", false, key("u1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDeployKey(ctx, admin, "acme", "web", *key("u1"), false); !errors.Is(err, ErrExists) {
		t.Errorf("user key as deploy key: %v", err)
	}
	if _, err := s.AddDeployKey(ctx, admin, "acme", "web", *key("d1"), true); err != nil {
		t.Fatal(err)
	}
	o, err := s.KeyOwnerByFingerprint(ctx, "SHA256:d1")
	if err != nil || o.RepoID != r.ID || !o.CanWrite || o.UserID != 0 {
		t.Fatalf("deploy owner %+v, %v", o, err)
	}
	if _, err := s.DeleteUserKey(ctx, admin, "SHA256:d1"); !errors.Is(err, ErrConflict) {
		t.Errorf("key remove of a deploy key: %v", err)
	}
	if _, err := s.DeleteDeployKey(ctx, admin, "SHA256:u1"); !errors.Is(err, ErrConflict) {
		t.Errorf("deploy-key remove of a user key: %v", err)
	}
	if _, err := s.DeleteDeployKey(ctx, admin, "SHA256:d1"); err != nil {
		t.Fatal(err)
	}
}

func TestOwnersAreNeverLost(t *testing.T) { onBoth(t, testOwnersAreNeverLost) }

func testOwnersAreNeverLost(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateUser(ctx, admin, "alice", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, admin, "bob", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, admin, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, admin, "alice"); !errors.Is(err, ErrConflict) {
		t.Errorf("remove last owner user: %v", err)
	}
	if err := s.RemoveMember(ctx, admin, "acme", "alice"); !errors.Is(err, ErrConflict) {
		t.Errorf("remove last owner member: %v", err)
	}
	if err := s.SetMember(ctx, admin, "acme", "alice", "admin"); !errors.Is(err, ErrConflict) {
		t.Errorf("demote last owner: %v", err)
	}
	if err := s.SetMember(ctx, admin, "acme", "bob", "owner"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, admin, "acme", "alice", "member"); err != nil {
		t.Errorf("demote with another owner: %v", err)
	}
	if err := s.DeleteUser(ctx, admin, "alice"); err != nil {
		t.Errorf("remove non-owner: %v", err)
	}
	m, _ := s.Members(ctx, "acme")
	if len(m) != 1 || m[0].User != "bob" || m[0].Role != "owner" {
		t.Errorf("members %+v", m)
	}
}

func TestRepoCreateRollsBackWhenDiskFails(t *testing.T) {
	onBoth(t, testRepoCreateRollsBackWhenDiskFails)
}

func testRepoCreateRollsBackWhenDiskFails(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	_, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, func(Repo) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Repo(ctx, "acme", "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("repository recorded although disk failed: %v", err)
	}
	entries, _ := s.Audit(ctx, 0)
	for _, e := range entries {
		if e.Action == "repo.create" {
			t.Errorf("audit row for a rolled-back change: %+v", e)
		}
	}
}

func TestRepoFactsAndCase(t *testing.T) { onBoth(t, testRepoFactsAndCase) }

func testRepoFactsAndCase(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	u, _ := s.CreateUser(ctx, admin, "alice", false, nil)
	if _, err := s.CreateOrg(ctx, admin, "Acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "Web", Public: true, Protected: []string{"refs/heads/main"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "ACME", Name: "web"}, nil); !errors.Is(err, ErrExists) {
		t.Errorf("case-folded duplicate repository: %v", err)
	}
	if err := s.SetMember(ctx, admin, "acme", "alice", "member"); err != nil {
		t.Fatal(err)
	}
	if err := s.Grant(ctx, admin, "acme", "web", "alice", "write"); err != nil {
		t.Fatal(err)
	}
	f, err := s.RepoFacts(ctx, u.ID, "ACME", "WEB")
	if err != nil {
		t.Fatal(err)
	}
	want := RepoFacts{OrgExists: true, OrgID: f.OrgID, Org: "Acme", RepoExists: true, RepoID: f.RepoID, Repo: "Web", Public: true, OrgRole: "member", Grant: "write"}
	if f != want {
		t.Errorf("facts %+v\nwant  %+v", f, want)
	}
	f, _ = s.RepoFacts(ctx, u.ID, "acme", "nope")
	if !f.OrgExists || f.RepoExists || f.OrgRole != "member" || f.Grant != "" {
		t.Errorf("facts for a missing repository %+v", f)
	}
	f, _ = s.RepoFacts(ctx, u.ID, "nope", "web")
	if f.OrgExists {
		t.Errorf("facts for a missing org %+v", f)
	}
	pats, _ := s.ProtectedRefs(ctx, want.RepoID)
	if len(pats) != 1 || pats[0] != "refs/heads/main" {
		t.Errorf("protected %v", pats)
	}
}

func TestDeleteOrg(t *testing.T) { onBoth(t, testDeleteOrg) }

func testDeleteOrg(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteOrg(ctx, admin, "acme", false, nil); !errors.Is(err, ErrConflict) {
		t.Errorf("delete org with repos: %v", err)
	}
	var moved []Repo
	repos, err := s.DeleteOrg(ctx, admin, "acme", true, func(rs []Repo) error { moved = rs; return nil })
	if err != nil || len(repos) != 1 || len(moved) != 1 {
		t.Fatalf("forced delete: %v %v %v", repos, moved, err)
	}
	if _, err := s.OrgByName(ctx, "acme"); !errors.Is(err, ErrNotFound) {
		t.Errorf("org still there: %v", err)
	}
}

func TestEveryChangeIsAudited(t *testing.T) { onBoth(t, testEveryChangeIsAudited) }

func testEveryChangeIsAudited(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateUser(ctx, Actor{Name: "local:root", RemoteAddr: "10.0.0.1"}, "alice", false, key("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, admin, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Grant(ctx, admin, "acme", "web", "alice", "read"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, admin, "acme", "web", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Protect(ctx, admin, "acme", "web", "refs/tags/*"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unprotect(ctx, admin, "acme", "web", "refs/tags/*"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUserKey(ctx, admin, "SHA256:k"); err != nil {
		t.Fatal(err)
	}
	entries, err := s.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(entries) - 1; i >= 0; i-- {
		got = append(got, entries[i].Action)
	}
	want := "user.add org.create repo.create repo.grant repo.revoke repo.protect repo.unprotect key.remove"
	if strings.Join(got, " ") != want {
		t.Errorf("audit actions\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	last := entries[len(entries)-1]
	if last.Actor != "local:root" || last.RemoteAddr != "10.0.0.1" || last.Details["fingerprint"] != "SHA256:k" {
		t.Errorf("first entry %+v", last)
	}
	if e, _ := s.Audit(ctx, 2); len(e) != 2 {
		t.Errorf("limit: %d entries", len(e))
	}
}

func TestReplicationQueue(t *testing.T) { onBoth(t, testReplicationQueue) }

func testReplicationQueue(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	srv, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "h", Port: 22, User: "cpm", Path: "/r", Role: "backup", HostKey: "k", Approved: true})
	if err != nil {
		t.Fatal(err)
	}
	// Adding the server queued the existing repository.
	j, ok, err := s.Claim(ctx, "w", 0, time.Minute, []int64{srv.ID})
	if err != nil || !ok || j.Generation != 1 {
		t.Fatalf("claim: %+v %v %v", j, ok, err)
	}
	// Not claimable twice while leased.
	if _, ok, _ := s.Claim(ctx, "w2", 0, time.Minute, nil); ok {
		t.Fatal("a running job was claimed twice")
	}
	// Two pushes during the sync coalesce into one more generation-bump.
	if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx, j, j.Generation, 0, "fp", 10); err != nil {
		t.Fatal(err)
	}
	jobs, _ := s.Jobs(ctx)
	if jobs[0].State != "pending" || jobs[0].Generation != 3 || jobs[0].SyncedGeneration != 1 || jobs[0].DirtySince.IsZero() {
		t.Fatalf("after a sync that missed two pushes: %+v", jobs[0])
	}
	j, ok, _ = s.Claim(ctx, "w", 0, time.Minute, nil)
	if !ok || j.Generation != 3 {
		t.Fatalf("second claim: %+v", j)
	}
	if err := s.Done(ctx, j, j.Generation, 0, "fp2", 1); err != nil {
		t.Fatal(err)
	}
	jobs, _ = s.Jobs(ctx)
	if jobs[0].State != "done" || !jobs[0].DirtySince.IsZero() || jobs[0].Fingerprint != "fp2" {
		t.Fatalf("after a complete sync: %+v", jobs[0])
	}
	// A crashed worker's lease is released when it starts again.
	if err := s.MarkDirty(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	j, _, _ = s.Claim(ctx, "w", 0, time.Hour, nil)
	if err := s.ReleaseLeases(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	j, ok, _ = s.Claim(ctx, "w", 0, time.Hour, nil)
	if !ok {
		t.Fatal("released job not claimable")
	}
	// Failures wait; retry clears the wait and blocks.
	if err := s.Failed(ctx, j, "down", time.Now().Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Claim(ctx, "w", 0, time.Hour, nil); ok {
		t.Fatal("a blocked job was claimed")
	}
	if n, err := s.Retry(ctx, admin); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if _, ok, _ := s.Claim(ctx, "w", 0, time.Hour, nil); !ok {
		t.Fatal("retried job not claimable")
	}
}

// A server that is back (RetryServer) gets its waiting jobs at once: a
// failed one, and one a push made pending again while its failure's
// backoff still ran.
func TestRetryServer(t *testing.T) { onBoth(t, testRetryServer) }

func testRetryServer(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "api"} {
		if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: name}, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "h", Port: 22, User: "cpm", Path: "/r", Role: "backup", HostKey: "k", Approved: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		j, ok, err := s.Claim(ctx, "w", 0, time.Minute, nil)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if err := s.Failed(ctx, j, "down", time.Now().Add(time.Hour), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkDirty(ctx, "acme", "web"); err != nil { // pending, still waiting an hour
		t.Fatal(err)
	}
	if _, ok, _ := s.Claim(ctx, "w", 0, time.Minute, nil); ok {
		t.Fatal("a job was claimed during its backoff")
	}
	if err := s.RetryServer(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok, err := s.Claim(ctx, "w", 0, time.Minute, nil); err != nil || !ok {
			t.Fatalf("a waiting job of a server that is back is not due: %v %v", ok, err)
		}
	}
}

// When backups and neighbours both wait, backups are served first (the
// seed's order: main, backups, neighbours), however long the
// neighbour's job has waited.
func TestClaimServesBackupsBeforeNeighbours(t *testing.T) {
	onBoth(t, testClaimServesBackupsBeforeNeighbours)
}

func testClaimServesBackupsBeforeNeighbours(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	// The neighbour's job is queued first, so it is the oldest.
	if _, err := s.AddServer(ctx, admin, Server{Name: "n1", Host: "h", Port: 22, User: "cpm", Path: "/r", Role: Neighbor, HostKey: "k", Approved: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // a later next_attempt_at at the store's resolution
	if _, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "h", Port: 22, User: "cpm", Path: "/r", Role: "backup", HostKey: "k", Approved: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		j, ok, err := s.Claim(ctx, "w", 0, time.Minute, nil)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		got = append(got, j.Server)
	}
	if strings.Join(got, " ") != "b1 n1" {
		t.Errorf("claim order %v, want the backup before the neighbour", got)
	}
}
