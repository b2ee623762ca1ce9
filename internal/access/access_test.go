package access

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"cpm/internal/authz"
	"cpm/internal/store"
)

func TestDecideAgainstStore(t *testing.T) {
	ctx := context.Background()
	s, err := store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := store.Actor{Name: "test"}
	key := func(fp string) *store.NewKey {
		return &store.NewKey{Fingerprint: fp, Type: "ssh-ed25519", PublicKey: "x " + fp}
	}
	if _, err := s.CreateUser(ctx, a, "owner", false, key("SHA256:owner")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, a, "reader", false, key("SHA256:reader")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, a, "stranger", false, key("SHA256:stranger")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrg(ctx, a, "acme", "owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "pub", Public: true}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Grant(ctx, a, "acme", "web", "reader", "read"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDeployKey(ctx, a, "acme", "web", *key("SHA256:deploy"), false); err != nil {
		t.Fatal(err)
	}

	c := New(s, nil)
	tests := []struct {
		fp, org, repo string
		action        authz.Action
		allow, hidden bool
	}{
		{"SHA256:owner", "acme", "web", authz.Push, true, false},
		{"SHA256:owner", "ACME", "WEB", authz.Read, true, false},
		{"SHA256:owner", "acme", "new", authz.Create, true, false},
		{"SHA256:reader", "acme", "web", authz.Read, true, false},
		{"SHA256:reader", "acme", "web", authz.Push, false, false},
		{"SHA256:reader", "acme", "new", authz.Create, false, true},
		{"SHA256:stranger", "acme", "web", authz.Read, false, true},
		{"SHA256:stranger", "acme", "pub", authz.Read, true, false},
		{"SHA256:stranger", "nope", "web", authz.Read, false, true},
		{"SHA256:deploy", "acme", "web", authz.Read, true, false},
		{"SHA256:deploy", "acme", "web", authz.Push, false, false},
		{"SHA256:deploy", "acme", "pub", authz.Read, false, true},
	}
	for _, tt := range tests {
		id, err := c.Identify(ctx, tt.fp)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Decide(ctx, id, tt.org, tt.repo, tt.action)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allow != tt.allow || r.Hidden != tt.hidden {
			t.Errorf("%s %v %s/%s: %+v", id.Name(), tt.action, tt.org, tt.repo, r.Decision)
		}
		if r.Allow && tt.action != authz.Create && (r.Facts.Org != "acme" || r.Facts.Repo != tt.repo && r.Facts.Repo != "web") {
			t.Errorf("canonical names %q/%q", r.Facts.Org, r.Facts.Repo)
		}
	}
	if _, err := c.Identify(ctx, "SHA256:unknown"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
}
