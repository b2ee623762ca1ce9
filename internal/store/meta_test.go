package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMetaTravelsWhole(t *testing.T) { onBoth(t, testMetaTravelsWhole) }

func testMetaTravelsWhole(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	origin := newStore(t)
	if _, err := origin.CreateUser(ctx, admin, "root", true, key("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.CreateUser(ctx, admin, "alice", false, key("a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.CreateUser(ctx, admin, "bob", false, key("b1")); err != nil {
		t.Fatal(err)
	}
	// loner reads public repositories only.
	if _, err := origin.CreateUser(ctx, admin, "loner", false, key("l1")); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.CreateOrg(ctx, admin, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	// empty has no repositories.
	if _, err := origin.CreateOrg(ctx, admin, "empty", "loner"); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web", Public: true, Protected: []string{"refs/heads/main"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := origin.Grant(ctx, admin, "acme", "web", "bob", "write"); err != nil {
		t.Fatal(err)
	}
	if _, err := origin.AddDeployKey(ctx, admin, "acme", "web", *key("d1"), true); err != nil {
		t.Fatal(err)
	}
	gen1, _ := origin.MetaGeneration(ctx)
	m, err := origin.ExportMeta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != gen1 || gen1 == 0 {
		t.Errorf("generation %d, MetaGeneration %d", m.Generation, gen1)
	}
	var users []string
	for _, u := range m.Users {
		users = append(users, u.Name)
	}
	if !reflect.DeepEqual(users, []string{"root", "alice", "bob", "loner"}) || len(m.Keys) != 5 || len(m.Orgs) != 1 {
		t.Fatalf("exported users %v, %d keys, %d orgs", users, len(m.Keys), len(m.Orgs))
	}
	// A push is not a metadata change.
	if err := origin.Record(ctx, admin, "push", "acme/web", nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := origin.MetaGeneration(ctx); g != gen1 {
		t.Errorf("a push moved the generation: %d -> %d", gen1, g)
	}

	peer := newStore(t)
	if err := peer.ReplaceMeta(ctx, admin, m); err != nil {
		t.Fatal(err)
	}
	for fp, want := range map[string]string{"SHA256:a1": "owner", "SHA256:b1": "write"} {
		o, err := peer.KeyOwnerByFingerprint(ctx, fp)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := peer.RepoFacts(ctx, o.UserID, "acme", "web")
		if f.OrgRole+f.Grant != want || !f.Public {
			t.Errorf("%s on the peer: %+v", fp, f)
		}
	}
	if o, _ := peer.KeyOwnerByFingerprint(ctx, "SHA256:d1"); !o.CanWrite || o.RepoID == 0 {
		t.Errorf("deploy key on the peer: %+v", o)
	}
	got, _ := peer.ExportMeta(ctx)
	got.Generation = m.Generation
	if !reflect.DeepEqual(got, m) {
		t.Errorf("peer's copy differs:\n%+v\n%+v", got, m)
	}

	// A removed key is gone from the next copy.
	if _, err := origin.DeleteUserKey(ctx, admin, "SHA256:b1"); err != nil {
		t.Fatal(err)
	}
	m2, _ := origin.ExportMeta(ctx)
	if m2.Generation <= m.Generation {
		t.Errorf("generation did not move: %d -> %d", m.Generation, m2.Generation)
	}
	if err := peer.ReplaceMeta(ctx, admin, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.KeyOwnerByFingerprint(ctx, "SHA256:b1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed key still on the peer: %v", err)
	}

	// Inconsistent input changes nothing.
	bad := m2
	bad.Grants = append(bad.Grants, MetaGrant{RepoID: 999, UserID: 1, Perm: "read"})
	if err := peer.ReplaceMeta(ctx, admin, bad); err == nil {
		t.Error("a grant on a missing repository was accepted")
	}
	if _, err := peer.KeyOwnerByFingerprint(ctx, "SHA256:a1"); err != nil {
		t.Errorf("a refused copy changed the peer: %v", err)
	}
}

func TestSnapshotIsAWorkingDatabase(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateUser(ctx, admin, "alice", true, key("a1")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := s.Snapshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	// Writers go on; the snapshot keeps its moment.
	if _, err := s.CreateUser(ctx, admin, "bob", false, nil); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeyOwnerByFingerprint(ctx, "SHA256:a1"); err != nil {
		t.Errorf("snapshot lacks alice's key: %v", err)
	}
	if _, err := c.UserByName(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("snapshot has a later change: %v", err)
	}
}

// Only changes of what is published move the metadata generation; the
// bookkeeping around replication does not, so it republishes nothing.
func TestWhichChangesMoveMetadata(t *testing.T) { onBoth(t, testWhichChangesMoveMetadata) }

func testWhichChangesMoveMetadata(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	setup := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.CreateUser(ctx, admin, "alice", false, key("a1"))
	setup(err)
	_, err = s.CreateUser(ctx, admin, "bob", false, key("b1"))
	setup(err)
	_, err = s.CreateOrg(ctx, admin, "acme", "alice")
	setup(err)
	_, err = s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "web"}, nil)
	setup(err)
	_, err = s.AddServer(ctx, admin, Server{Name: "b1", Host: "127.0.0.1", Port: 22, User: "u", Path: "/p", Role: Backup, HostKey: "ssh-ed25519 AAAA"})
	setup(err)
	tests := []struct {
		change string
		do     func() error
		moves  bool
	}{
		{"grant", func() error { return s.Grant(ctx, admin, "acme", "web", "bob", "read") }, true},
		{"member", func() error { return s.SetMember(ctx, admin, "acme", "bob", "member") }, true},
		{"protect", func() error { return s.Protect(ctx, admin, "acme", "web", "refs/heads/main") }, true},
		{"push", func() error { return s.Record(ctx, admin, "push", "acme/web", nil) }, false},
		{"promote", func() error { return s.Record(ctx, admin, "promote", "/srv", nil) }, false},
		{"sync retry", func() error { _, err := s.Retry(ctx, admin); return err }, false},
		{"key rotation", func() error { return s.SetKeyState(ctx, admin, "b1", "next") }, false},
		{"hold", func() error { return s.HoldServers(ctx, admin, "promoted") }, false},
	}
	for _, tt := range tests {
		before, err := s.MetaGeneration(ctx)
		setup(err)
		if err := tt.do(); err != nil {
			t.Fatalf("%s: %v", tt.change, err)
		}
		after, err := s.MetaGeneration(ctx)
		setup(err)
		if moved := after != before; moved != tt.moves {
			t.Errorf("%s: generation %d -> %d, want moved=%v", tt.change, before, after, tt.moves)
		}
	}
}
