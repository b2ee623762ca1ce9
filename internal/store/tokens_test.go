package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cpm/internal/token"
)

type tokenWorld struct {
	s              *Store
	ann            User
	web, api, docs Repo
}

func newTokenWorld(t *testing.T, s *Store) tokenWorld {
	t.Helper()
	ctx := context.Background()
	ann, err := s.CreateUser(ctx, admin, "ann", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	w := tokenWorld{s: s, ann: ann}
	for _, r := range []*Repo{&w.web, &w.api, &w.docs} {
		name := map[*Repo]string{&w.web: "web", &w.api: "api", &w.docs: "docs"}[r]
		if *r, err = s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: name}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w tokenWorld) create(t *testing.T, n NewToken) (string, Token) {
	t.Helper()
	secret, hash, err := token.New()
	if err != nil {
		t.Fatal(err)
	}
	n.Hash = hash
	if n.Kind == "" {
		n.Kind = TokenUser
	}
	tok, err := w.s.CreateToken(context.Background(), admin, n)
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

// TestTokens: a token is found by its secret's hash alone, with its
// scope and limits; revoked, expired and unknown tokens are one answer;
// deleting a repository narrows a scoped token to nothing (never widens
// it to everything) and deleting the user takes its tokens.
func TestTokens(t *testing.T) { onBoth(t, testTokens) }

func testTokens(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	w := newTokenWorld(t, s)
	all, allTok := w.create(t, NewToken{UserID: w.ann.ID, Name: "laptop", ExpiresAt: time.Now().Add(time.Hour)})
	scoped, scopedTok := w.create(t, NewToken{UserID: w.ann.ID, Name: "ci", RepoIDs: []int64{w.web.ID, w.api.ID}, ReadOnly: true})
	deploy, deployTok := w.create(t, NewToken{RepoID: w.docs.ID, Name: "argo", Kind: TokenDeploy, ReadOnly: true})

	if allTok.Scope != "all" || scopedTok.Scope != "acme/api acme/web, read-only" || deployTok.Scope != "acme/docs, deploy, read-only" {
		t.Errorf("scopes %q, %q, %q", allTok.Scope, scopedTok.Scope, deployTok.Scope)
	}
	if allTok.Expires == nil || scopedTok.Expires != nil || allTok.User != "ann" || deployTok.User != "" {
		t.Errorf("listed as %+v, %+v, %+v", allTok, scopedTok, deployTok)
	}
	o, err := s.TokenOwnerByHash(ctx, token.Hash(all))
	if err != nil || o.UserID != w.ann.ID || o.User != "ann" || o.Scoped || o.ReadOnly || o.RepoID != 0 {
		t.Fatalf("all: %+v, %v", o, err)
	}
	o, err = s.TokenOwnerByHash(ctx, token.Hash(scoped))
	if err != nil || !o.Scoped || !o.ReadOnly || len(o.RepoIDs) != 2 {
		t.Fatalf("scoped: %+v, %v", o, err)
	}
	o, err = s.TokenOwnerByHash(ctx, token.Hash(deploy))
	if err != nil || o.RepoID != w.docs.ID || o.UserID != 0 || o.Kind != TokenDeploy {
		t.Fatalf("deploy: %+v, %v", o, err)
	}

	// Unknown, revoked, expired: the same ErrNotFound.
	if _, err := s.TokenOwnerByHash(ctx, token.Hash("cpm_nothing")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := s.RevokeToken(ctx, admin, deployTok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenOwnerByHash(ctx, token.Hash(deploy)); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked: %v", err)
	}
	if _, err := s.RevokeToken(ctx, admin, deployTok.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked twice: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET expires_at = ? WHERE id = ?`,
		time.Now().Add(-time.Second).UTC().Format(timeFormat), allTok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenOwnerByHash(ctx, token.Hash(all)); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired: %v", err)
	}
	if _, err := s.TokenOwnerByID(ctx, allTok.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired, by id: %v", err)
	}

	// A scoped token whose repositories go keeps a scope of none.
	for _, r := range []Repo{w.web, w.api} {
		if _, err := s.DeleteRepo(ctx, admin, "acme", r.Name, nil); err != nil {
			t.Fatal(err)
		}
	}
	o, err = s.TokenOwnerByHash(ctx, token.Hash(scoped))
	if err != nil || !o.Scoped || len(o.RepoIDs) != 0 {
		t.Fatalf("scoped, repositories deleted: %+v, %v", o, err)
	}
	list, err := s.Tokens(ctx, "ann")
	if err != nil || len(list) != 2 || !strings.HasPrefix(list[1].Scope, "none") {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := s.DeleteUser(ctx, admin, "ann"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenOwnerByHash(ctx, token.Hash(scoped)); !errors.Is(err, ErrNotFound) {
		t.Errorf("user deleted: %v", err)
	}
	if _, err := s.Tokens(ctx, "ann"); !errors.Is(err, ErrNotFound) {
		t.Errorf("list of a deleted user: %v", err)
	}
}

// TestTokenKinds: lfs tokens stay out of token list and the audit log
// and are cleared once expired; bad tokens are refused before a write;
// the audit never holds a hash.
func TestTokenKinds(t *testing.T) { onBoth(t, testTokenKinds) }

func testTokenKinds(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	w := newTokenWorld(t, s)
	_, old := w.create(t, NewToken{UserID: w.ann.ID, Name: "lfs", Kind: TokenLFS, ExpiresAt: time.Now().Add(time.Minute)})
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET expires_at = ? WHERE id = ?`,
		time.Now().Add(-time.Second).UTC().Format(timeFormat), old.ID); err != nil {
		t.Fatal(err)
	}
	lfsKey, _ := w.create(t, NewToken{RepoID: w.web.ID, Name: "lfs", Kind: TokenLFS, ExpiresAt: time.Now().Add(time.Minute)})
	if o, err := s.TokenOwnerByHash(ctx, token.Hash(lfsKey)); err != nil || o.RepoID != w.web.ID {
		t.Fatalf("a deploy key's lfs token: %+v, %v", o, err)
	}
	// The next lfs token of the same owner clears its expired ones.
	w.create(t, NewToken{UserID: w.ann.ID, Name: "lfs", Kind: TokenLFS, ExpiresAt: time.Now().Add(time.Minute)})
	if _, err := s.TokenOwnerByID(ctx, old.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired lfs token: %v", err)
	}
	var left int
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE id = ?`, old.ID).Scan(&left)
	if left != 0 {
		t.Errorf("an expired lfs token was not cleared")
	}
	secret, user := w.create(t, NewToken{UserID: w.ann.ID, Name: "laptop"})
	list, err := s.Tokens(ctx, "")
	if err != nil || len(list) != 1 || list[0].ID != user.ID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	entries, err := s.Audit(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var creates int
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "token.") || strings.HasPrefix(e.Action, "deploy-token.") {
			creates++
		}
		if d := fmt.Sprint(e.Target, e.Details); strings.Contains(d, token.Hash(secret)) || strings.Contains(d, secret) {
			t.Errorf("audit row holds the token: %+v", e)
		}
	}
	if creates != 1 {
		t.Errorf("%d token audit rows, want 1 (lfs tokens leave none)", creates)
	}
	for name, bad := range map[string]NewToken{
		"both":        {UserID: w.ann.ID, RepoID: w.web.ID, Kind: TokenLFS},
		"neither":     {Kind: TokenUser},
		"deploy user": {UserID: w.ann.ID, Kind: TokenDeploy},
		"user repo":   {RepoID: w.web.ID, Kind: TokenUser},
		"past":        {UserID: w.ann.ID, Kind: TokenUser, ExpiresAt: time.Now().Add(-time.Minute)},
		"kind":        {UserID: w.ann.ID, Kind: "root"},
		"scope":       {RepoID: w.web.ID, Kind: TokenDeploy, RepoIDs: []int64{w.api.ID}},
		"no user":     {UserID: 9999, Kind: TokenUser},
	} {
		_, hash, _ := token.New()
		bad.Hash, bad.Name = hash, name
		if _, err := s.CreateToken(ctx, admin, bad); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
}

// TestTokenKey: an lfs token made through a deploy key reads the key's
// write permission at each use, and goes with the key (both engines).
func TestTokenKey(t *testing.T) { onBoth(t, testTokenKey) }

func testTokenKey(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	w := newTokenWorld(t, s)
	k, err := s.AddDeployKey(ctx, admin, "acme", "web", NewKey{Fingerprint: "SHA256:dk", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 dk"}, true)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := w.create(t, NewToken{RepoID: w.web.ID, KeyID: k.ID, Name: "lfs", Kind: TokenLFS, ExpiresAt: time.Now().Add(time.Minute)})
	if o, err := s.TokenOwnerByHash(ctx, token.Hash(secret)); err != nil || o.KeyID != k.ID || !o.KeyCanWrite {
		t.Fatalf("%+v %v, want key %d writing", o, err, k.ID)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE ssh_keys SET can_write = 0 WHERE id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	if o, err := s.TokenOwnerByHash(ctx, token.Hash(secret)); err != nil || o.KeyCanWrite {
		t.Fatalf("after the key lost write: %+v %v", o, err)
	}
	if _, err := s.DeleteDeployKey(ctx, admin, "SHA256:dk"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenOwnerByHash(ctx, token.Hash(secret)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the key was removed: %v", err)
	}
}

// TestLFSMintLimit: a key is handed at most LFSMintsPerMinute lfs
// tokens a minute, whichever process asks (the count is the database's),
// and each one made clears that key's expired ones (both engines).
func TestLFSMintLimit(t *testing.T) { onBoth(t, testLFSMintLimit) }

func testLFSMintLimit(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	w := newTokenWorld(t, s)
	k, err := s.AddDeployKey(ctx, admin, "acme", "web", NewKey{Fingerprint: "SHA256:dk", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 dk"}, true)
	if err != nil {
		t.Fatal(err)
	}
	lfs := func() NewToken {
		_, hash, err := token.New()
		if err != nil {
			t.Fatal(err)
		}
		return NewToken{RepoID: w.web.ID, KeyID: k.ID, Name: "lfs", Kind: TokenLFS, Hash: hash, ExpiresAt: time.Now().Add(time.Minute)}
	}
	_, first := w.create(t, lfs())
	for range LFSMintsPerMinute - 1 {
		w.create(t, lfs())
	}
	if _, err := s.CreateToken(ctx, admin, lfs()); !errors.Is(err, ErrTooManyTokens) {
		t.Fatalf("token %d of the minute: %v, want ErrTooManyTokens", LFSMintsPerMinute+1, err)
	}
	// The first one made long ago and expired: it no longer counts, and
	// the next token made clears it.
	old := time.Now().Add(-2 * time.Minute).UTC().Format(timeFormat)
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET created_at = ?, expires_at = ? WHERE id = ?`, old, old, first.ID); err != nil {
		t.Fatal(err)
	}
	w.create(t, lfs())
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE id = ?`, first.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the expired token is still there (%d, %v)", n, err)
	}
}
