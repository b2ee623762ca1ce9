package access

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/token"
)

// TestTokensAgainstStore: IdentifyToken gives the user's identity
// narrowed by the token (scope, read-only) or a deploy token's; unknown,
// malformed, revoked and expired tokens are the one ErrUnknownToken; a
// use is recorded, at most once a minute.
func TestTokensAgainstStore(t *testing.T) {
	ctx := context.Background()
	s, err := store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := store.Actor{Name: "test"}
	owner, err := s.CreateUser(ctx, a, "owner", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, a, "acme", "owner"); err != nil {
		t.Fatal(err)
	}
	repo := map[string]store.Repo{}
	for _, name := range []string{"web", "api", "pub"} {
		if repo[name], err = s.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: name, Public: name == "pub"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	make := func(n store.NewToken) (string, int64) {
		t.Helper()
		secret, hash, err := token.New()
		if err != nil {
			t.Fatal(err)
		}
		n.Hash, n.Name = hash, "t"
		if n.Kind == "" {
			n.Kind = store.TokenUser
		}
		tok, err := s.CreateToken(ctx, a, n)
		if err != nil {
			t.Fatal(err)
		}
		return secret, tok.ID
	}
	full, fullID := make(store.NewToken{UserID: owner.ID})
	ro, _ := make(store.NewToken{UserID: owner.ID, ReadOnly: true})
	scoped, _ := make(store.NewToken{UserID: owner.ID, RepoIDs: []int64{repo["web"].ID}})
	deployRO, _ := make(store.NewToken{RepoID: repo["web"].ID, Kind: store.TokenDeploy, ReadOnly: true})
	deployRW, deployRWID := make(store.NewToken{RepoID: repo["web"].ID, Kind: store.TokenDeploy})

	c := New(s, nil)
	tests := []struct {
		secret, repo  string
		action        authz.Action
		allow, hidden bool
	}{
		{full, "web", authz.Push, true, false},
		{full, "new", authz.Create, true, false},
		{ro, "web", authz.Read, true, false},
		{ro, "web", authz.Push, false, false},
		{ro, "new", authz.Create, false, false},
		{scoped, "web", authz.Push, true, false},
		{scoped, "api", authz.Read, false, true},
		{scoped, "api", authz.Push, false, true},
		{scoped, "pub", authz.Read, true, false},
		{scoped, "pub", authz.Push, false, false},
		{scoped, "new", authz.Create, false, true},
		{deployRO, "web", authz.Read, true, false},
		{deployRO, "web", authz.Push, false, false},
		{deployRO, "api", authz.Read, false, true},
		{deployRW, "web", authz.Push, true, false},
		{deployRW, "api", authz.Push, false, true},
	}
	for _, tt := range tests {
		id, err := c.IdentifyToken(ctx, tt.secret)
		if err != nil {
			t.Fatal(err)
		}
		if id.Token == nil {
			t.Fatalf("%s: no token info", id.Name())
		}
		r, err := c.Decide(ctx, id, "acme", tt.repo, tt.action)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allow != tt.allow || r.Hidden != tt.hidden {
			t.Errorf("%s (token %+v) %v acme/%s: %+v", id.Name(), *id.Token, tt.action, tt.repo, r.Decision)
		}
	}
	// What the hook sees: the same identity by id, with the same limits.
	if id, err := c.IdentifyTokenID(ctx, deployRWID); err != nil || !id.CanWrite || id.RepoID != repo["web"].ID || id.Name() != "deploy-token-5" {
		t.Errorf("deploy token by id: %+v %v (%s)", id, err, id.Name())
	}
	// Authorize says "not found" out of scope, in the same words as for
	// a repository that does not exist.
	id, _ := c.IdentifyToken(ctx, scoped)
	_, errOut := c.Authorize(ctx, id, names.RepoPath{Org: "acme", Repo: "api"}, authz.Read)
	_, errNone := c.Authorize(ctx, id, names.RepoPath{Org: "acme", Repo: "nope"}, authz.Read)
	_, pushOut := c.Authorize(ctx, id, names.RepoPath{Org: "acme", Repo: "api"}, authz.Push)
	_, pushNone := c.Authorize(ctx, id, names.RepoPath{Org: "acme", Repo: "nope"}, authz.Push)
	for _, err := range []error{errOut, errNone, pushOut, pushNone} {
		var e *Error
		if !errors.As(err, &e) || e.Kind != NotFound || e.Creatable {
			t.Errorf("scoped token outside its scope: %v (%+v), want a plain not found", err, e)
		}
	}

	// Refusals: one error for all.
	bad := []string{"", "cpm_", "x" + full[1:], full[:len(full)-1], "cpm_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	if _, err := s.RevokeToken(ctx, a, deployRWID); err != nil {
		t.Fatal(err)
	}
	bad = append(bad, deployRW)
	exp, expID := make(store.NewToken{UserID: owner.ID, ExpiresAt: time.Now().Add(time.Second)})
	if _, err := c.IdentifyToken(ctx, exp); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := c.IdentifyToken(ctx, exp); err != nil {
			break
		}
	}
	bad = append(bad, exp)
	for _, b := range bad {
		if _, err := c.IdentifyToken(ctx, b); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("IdentifyToken(%q) = %v, want ErrUnknownToken", b, err)
		}
	}
	for _, id := range []int64{deployRWID, expID, 999} {
		if _, err := c.IdentifyTokenID(ctx, id); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("IdentifyTokenID(%d) = %v, want ErrUnknownToken", id, err)
		}
	}

	// The first use is recorded (in the background); the next ones within
	// a minute are not written again.
	deadline := time.Now().Add(10 * time.Second)
	var used *time.Time
	for used == nil && time.Now().Before(deadline) {
		list, err := s.Tokens(ctx, "owner")
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			if tk.ID == fullID {
				used = tk.LastUsed
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if used == nil {
		t.Fatal("last use never recorded")
	}
	if err := s.TouchToken(ctx, fullID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	list, _ := s.Tokens(ctx, "owner")
	for _, tk := range list {
		if tk.ID == fullID && !tk.LastUsed.Equal(*used) {
			t.Errorf("last use rewritten within a minute: %v then %v", *used, *tk.LastUsed)
		}
	}
}

// TestTouchesOncePerMinute: a burst of uses of one token is one write a
// minute; other tokens are not held up; the memory stays bounded.
func TestTouchesOncePerMinute(t *testing.T) {
	tt := &touches{at: map[int64]time.Time{}}
	now := time.Unix(1e9, 0)
	if !tt.due(1, now) || tt.due(1, now) || tt.due(1, now.Add(59*time.Second)) {
		t.Error("token 1 written more than once within a minute")
	}
	if !tt.due(2, now) || !tt.due(1, now.Add(touchEvery)) {
		t.Error("a write that was due was skipped")
	}
	for i := range int64(3 * maxTouches) {
		tt.due(100+i, now)
	}
	if len(tt.at) > maxTouches {
		t.Errorf("%d tokens remembered", len(tt.at))
	}
	var none *touches
	if !none.due(1, now) {
		t.Error("a zero Checker never records a use")
	}
}
