package access

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cpm/internal/authz"
	"cpm/internal/pgtest"
	"cpm/internal/store"
)

// TestReadableMatchesDecide: the repositories Readable picks in SQL are
// exactly those authz allows to read when it is handed every
// repository's facts, with the same permission, for every kind of
// principal, on both engines: the SQL can never drift from the rule.
func TestReadableMatchesDecide(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var s *store.Store
			var err error
			if engine == "sqlite" {
				s, err = store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
			} else {
				s, err = store.InitAt(ctx, pg.Database(t), "")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			keys := populateReaders(t, s)
			c := New(s, nil)
			ids := []Identity{Anonymous}
			for _, fp := range keys {
				id, err := c.Identify(ctx, fp)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			for _, id := range ids {
				got, err := c.Readable(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := decideEach(t, s, id)
				if !slices.Equal(listed(got), want) {
					t.Errorf("%s reads\n%v\nauthz says\n%v", id.Name(), listed(got), want)
				}
				// The SQL alone, before authz sees a row: neither more
				// nor fewer repositories than the rule allows.
				rows, err := s.ReadableRepoFacts(ctx, Readers(id))
				if err != nil {
					t.Fatal(err)
				}
				var picked []string
				for _, f := range rows {
					picked = append(picked, f.Org+"/"+f.Repo)
				}
				if wantNames := namesOf(want); !slices.Equal(picked, wantNames) {
					t.Errorf("SQL picks for %s\n%v\nauthz allows\n%v", id.Name(), picked, wantNames)
				}
			}
		})
	}
}

// decideEach is the rule itself: authz on every repository's facts.
func decideEach(t *testing.T, s *store.Store, id Identity) []string {
	all, err := s.AllRepoFacts(context.Background(), id.UserID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		p, af := Translate(id, f)
		if perm := authz.Effective(p, af); perm >= authz.PermRead {
			out = append(out, fmt.Sprintf("%s/%s %s", f.Org, f.Repo, perm))
		}
	}
	return out
}

func namesOf(decided []string) []string {
	var out []string
	for _, d := range decided {
		out = append(out, strings.Fields(d)[0])
	}
	return out
}

func listed(ls []Listing) []string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s/%s %s", l.Org, l.Repo, l.Perm))
	}
	return out
}

// populateReaders makes three organisations with public and private
// repositories, users of every standing (site admin, owner, admin,
// member, grants of each level, in one organisation or several, nobody)
// and deploy keys; it returns every key's fingerprint.
func populateReaders(t *testing.T, s *store.Store) []string {
	ctx := context.Background()
	a := store.Actor{Name: "test"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var fps []string
	key := func(fp string) *store.NewKey {
		fps = append(fps, fp)
		return &store.NewKey{Fingerprint: fp, Type: "ssh-ed25519", PublicKey: "x " + fp}
	}
	for _, u := range []string{"root", "owner", "orgadmin", "member", "reader", "writer", "repoadmin", "mixed", "stranger"} {
		_, err := s.CreateUser(ctx, a, u, u == "root", key("SHA256:"+u))
		must(err)
	}
	for _, org := range []string{"acme", "beta", "gamma"} {
		_, err := s.CreateOrg(ctx, a, org, "")
		must(err)
		for i, name := range []string{"web", "api", "pub", "docs"} {
			_, err := s.CreateRepo(ctx, a, store.NewRepo{Org: org, Name: name, Public: i%2 == 0 && name == "pub"}, nil)
			must(err)
		}
	}
	for _, m := range [][3]string{
		{"acme", "owner", "owner"}, {"acme", "orgadmin", "admin"}, {"beta", "member", "member"},
		{"gamma", "mixed", "member"}, {"beta", "root", "member"},
	} {
		must(s.SetMember(ctx, a, m[0], m[1], m[2]))
	}
	for _, g := range [][4]string{
		{"acme", "web", "reader", "read"}, {"beta", "api", "reader", "read"},
		{"acme", "api", "writer", "write"}, {"gamma", "docs", "repoadmin", "admin"},
		{"acme", "docs", "mixed", "write"}, {"gamma", "web", "mixed", "admin"},
		{"beta", "web", "member", "admin"},
	} {
		must(s.Grant(ctx, a, g[0], g[1], g[2], g[3]))
	}
	_, err := s.AddDeployKey(ctx, a, "acme", "web", *key("SHA256:deploy-ro"), false)
	must(err)
	_, err = s.AddDeployKey(ctx, a, "beta", "api", *key("SHA256:deploy-rw"), true)
	must(err)
	_, err = s.AddDeployKey(ctx, a, "gamma", "pub", *key("SHA256:deploy-pub"), false)
	must(err)
	return fps
}
