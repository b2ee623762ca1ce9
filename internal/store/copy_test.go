package store

import (
	"context"
	"strings"
	"testing"
)

// Every kind of metadata travels from SQLite to PostgreSQL with its ids;
// the copy then works as a store (new rows get fresh ids), and a second
// copy into the same database is refused.
func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := src.CreateUser(ctx, admin, "alice", true, key("a1"))
	must(err)
	_, err = src.CreateUser(ctx, admin, "bob", false, key("b1"))
	must(err)
	must(src.SetPrincipal(ctx, admin, "bob", "bob@example"))
	_, err = src.CreateOrg(ctx, admin, "acme", "alice")
	must(err)
	must(src.SetMember(ctx, admin, "acme", "bob", "member"))
	r, err := src.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "Web", Protected: []string{"refs/heads/main"}}, nil)
	must(err)
	must(src.Grant(ctx, admin, "acme", "web", "bob", "write"))
	must(src.Protect(ctx, admin, "acme", "web", "refs/tags/*"))
	_, err = src.AddDeployKey(ctx, admin, "acme", "web", *key("d1"), true)
	must(err)
	_, err = src.AddCA(ctx, admin, CA{Name: "corp", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAAca", Fingerprint: "SHA256:ca"})
	must(err)
	_, err = src.CreateLFSLock(ctx, admin, r.ID, "acme/web", "big.bin", "bob")
	must(err)
	// The newest lock is gone by the time of the copy: its id must not
	// come back on PostgreSQL either.
	gone, err := src.CreateLFSLock(ctx, admin, r.ID, "acme/web", "gone.bin", "bob")
	must(err)
	must(src.DeleteLFSLock(ctx, admin, r.ID, "acme/web", gone))
	_, err = src.AddServer(ctx, admin, Server{Name: "b1", Host: "127.0.0.1", Port: 22, User: "cpm", Path: "/x", Role: "backup"})
	must(err)
	must(src.MarkDirty(ctx, "acme", "web"))
	must(src.SetNodeName(ctx, "node1"))
	bob, err := src.UserByName(ctx, "bob")
	must(err)
	tok, err := src.CreateToken(ctx, admin, NewToken{UserID: bob.ID, Name: "ci", Hash: strings.Repeat("ab", 32), RepoIDs: []int64{r.ID}, Kind: TokenUser})
	must(err)

	dst := newPostgresStore(t)
	counts, err := src.CopyTo(ctx, dst)
	must(err)
	// diverged_refs exist only in a cluster, which SQLite never was.
	for _, c := range counts {
		if c.Source != c.Copied || (c.Source == 0 && c.Table != "memberships" && c.Table != "diverged_refs") {
			t.Errorf("%s: %d in the source, %d copied", c.Table, c.Source, c.Copied)
		}
	}
	o, err := dst.KeyOwnerByFingerprint(ctx, "SHA256:b1")
	if err != nil || o.User != "bob" {
		t.Errorf("bob's key on the copy: %+v %v", o, err)
	}
	f, err := dst.RepoFacts(ctx, o.UserID, "ACME", "web")
	if err != nil || f.Grant != "write" || f.OrgRole != "member" || f.Repo != "Web" {
		t.Errorf("facts on the copy: %+v %v", f, err)
	}
	if l, err := dst.CreateLFSLock(ctx, admin, r.ID, "acme/web", "new.bin", "bob"); err != nil || l.ID <= gone.ID {
		t.Errorf("a lock made on the copy: id %d (%v), want above the deleted %d", l.ID, err, gone.ID)
	}
	if o, err := dst.TokenOwnerByHash(ctx, strings.Repeat("ab", 32)); err != nil || o.ID != tok.ID || o.User != "bob" || len(o.RepoIDs) != 1 {
		t.Errorf("bob's token on the copy: %+v %v", o, err)
	}
	if t2, err := dst.CreateToken(ctx, admin, NewToken{UserID: bob.ID, Name: "new", Hash: strings.Repeat("cd", 32), Kind: TokenUser}); err != nil || t2.ID <= tok.ID {
		t.Errorf("a token made on the copy: %+v %v", t2, err)
	}
	if name, _ := dst.NodeName(ctx); name != "node1" {
		t.Errorf("node name %q", name)
	}
	if p, err := dst.UserByPrincipal(ctx, "bob@example"); err != nil || p.User != "bob" {
		t.Errorf("principal: %+v %v", p, err)
	}
	u, err := dst.CreateUser(ctx, admin, "carol", false, key("c1"))
	if err != nil || u.ID <= 2 {
		t.Errorf("a new user on the copy: %+v %v", u, err)
	}
	if _, err := src.CopyTo(ctx, dst); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second copy: %v", err)
	}
}
