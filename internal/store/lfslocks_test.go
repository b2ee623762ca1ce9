package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func lockRepo(t *testing.T, s *Store) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// TestLFSLockIDsNeverRepeat: a lock taken after an unlock never gets the
// id of the lock removed, and an unlock decided on a lock that has gone
// removes nothing else.
func TestLFSLockIDsNeverRepeat(t *testing.T) { onBoth(t, testLFSLockIDsNeverRepeat) }

func testLFSLockIDsNeverRepeat(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	repo := lockRepo(t, s)
	ann, err := s.CreateLFSLock(ctx, admin, repo, "acme/web", "a.psd", "ann")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLFSLock(ctx, admin, repo, "acme/web", ann); err != nil {
		t.Fatal(err)
	}
	bob, err := s.CreateLFSLock(ctx, admin, repo, "acme/web", "b.psd", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob.ID == ann.ID {
		t.Fatalf("lock id %d given out again", bob.ID)
	}
	// A second, stale unlock of ann's lock (read before the first one
	// removed it) must not take bob's.
	if err := s.DeleteLFSLock(ctx, admin, repo, "acme/web", ann); !errors.Is(err, ErrNotFound) {
		t.Errorf("stale unlock: %v, want ErrNotFound", err)
	}
	// Nor does a lock read with the right id but another path or owner.
	for _, stale := range []LFSLock{
		{ID: bob.ID, Path: "a.psd", Owner: "bob"},
		{ID: bob.ID, Path: "b.psd", Owner: "ann"},
	} {
		if err := s.DeleteLFSLock(ctx, admin, repo, "acme/web", stale); !errors.Is(err, ErrNotFound) {
			t.Errorf("unlock of %+v: %v, want ErrNotFound", stale, err)
		}
	}
	if _, err := s.LFSLock(ctx, repo, bob.ID); err != nil {
		t.Fatalf("bob's lock is gone: %v", err)
	}
}

// TestLFSLockMigration: locks taken before the migration to
// AUTOINCREMENT keep their ids, and ids after it continue above the
// highest.
func TestLFSLockMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cpm.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations(sqlite)
	if err != nil {
		t.Fatal(err)
	}
	before := 0 // the migrations before lfs_lock_ids
	for before < len(ms) && !strings.Contains(ms[before].name, "lfs_lock_ids") {
		before++
	}
	for _, m := range ms[:before] {
		if _, err := db.ExecContext(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	for _, q := range []string{
		`INSERT INTO orgs (name, created_at) VALUES ('acme', '2026-01-01T00:00:00Z')`,
		`INSERT INTO repos (org_id, name, created_at) SELECT id, 'web', '2026-01-01T00:00:00Z' FROM orgs`,
		`INSERT INTO lfs_locks (id, repo_id, path, owner, locked_at) SELECT 7, id, 'a.psd', 'ann', '2026-01-01T00:00:00Z' FROM repos`,
		fmt.Sprintf("PRAGMA user_version = %d", before),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var repo int64
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM repos`).Scan(&repo); err != nil {
		t.Fatal(err)
	}
	old, err := s.LFSLock(ctx, repo, 7)
	if err != nil || old.Path != "a.psd" || old.Owner != "ann" {
		t.Fatalf("lock 7 after migration: %+v, %v", old, err)
	}
	if err := s.DeleteLFSLock(ctx, admin, repo, "acme/web", old); err != nil {
		t.Fatal(err)
	}
	l, err := s.CreateLFSLock(ctx, admin, repo, "acme/web", "b.psd", "bob")
	if err != nil || l.ID <= 7 {
		t.Fatalf("new lock after migration: id %d, %v; want above 7", l.ID, err)
	}
}
