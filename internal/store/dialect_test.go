package store

import (
	"context"
	"cpm/internal/dburl"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`WHERE a = ? AND b = ?`, `WHERE a = $1 AND b = $2`},
		{`VALUES (?1, ?2, ?2)`, `VALUES ($1, $2, $2)`},
		{`SELECT r.id, ?, 1, ?2, ?2`, `SELECT r.id, $1, 1, $2, $2`}, // SQLite: bare ? is largest+1
		{`WHERE a = ?2 AND b = ? AND c = ?1`, `WHERE a = $2 AND b = $3 AND c = $1`},
		{`WHERE a = '?' AND b = ?`, `WHERE a = '?' AND b = $1`}, // quoted: untouched
		{`SELECT "a?b" FROM t WHERE x = ?`, `SELECT "a?b" FROM t WHERE x = $1`},
		{`WHERE a = 'it''s ?' AND b = ?`, `WHERE a = 'it''s ?' AND b = $1`},
	} {
		if got := postgres.rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := sqlite.rebind(tt.in); got != tt.in {
			t.Errorf("sqlite rebind changed %q", tt.in)
		}
	}
}

// A wrong password, an unreachable server, a database without cpm's
// schema: every error names the database without its password.
func TestPostgresErrorsHidePassword(t *testing.T) {
	ctx := context.Background()
	good := pg.Database(t)
	wrong := strings.Replace(good, pg.Password(), "not-the-"+pg.Password(), 1)
	closed := strings.Replace(good, "127.0.0.1:", "127.0.0.1:1", 1)
	for _, u := range []string{wrong, closed, good} {
		_, err := OpenAt(ctx, u, "")
		if err == nil {
			t.Fatalf("open %s: no error", dburl.Redact(u))
		}
		if strings.Contains(err.Error(), pg.Password()) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if _, err := OpenAt(ctx, good, ""); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("uninitialised database: %v, want ErrNoDatabase", err)
	}
}

// Several nodes starting at once against one empty database: the advisory
// lock lets exactly one apply each version.
func TestPostgresConcurrentInit(t *testing.T) {
	ctx := context.Background()
	u := pg.Database(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := InitAt(ctx, u, "")
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s, err := OpenAt(ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Version(ctx); v != SchemaVersion() {
		t.Errorf("version %d, want %d", v, SchemaVersion())
	}
}

func TestClaimIsExclusive(t *testing.T) { onBoth(t, testClaimIsExclusive) }

// Eight workers claim from one queue at once (connections of their own on
// PostgreSQL, as workers of several nodes would have): every
// job is claimed exactly once.
func testClaimIsExclusive(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	const repos = 40
	for i := range repos {
		if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: "r" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "127.0.0.1", Port: 22, User: "cpm", Path: "/x", Role: "backup"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, ok, err := s.Claim(ctx, "w"+string(rune('0'+w)), 0, time.Minute, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				seen[j.RepoID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != repos {
		t.Errorf("claimed %d jobs, want %d", len(seen), repos)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job of repository %d claimed %d times", id, n)
		}
	}
}

func TestLastOwnerUnderConcurrency(t *testing.T) { onBoth(t, testLastOwnerUnderConcurrency) }

// Two admins each remove a different one of an organisation's two owners
// at the same moment: one removal must be refused, on either engine.
func testLastOwnerUnderConcurrency(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	for _, u := range []string{"ann", "ben"} {
		if _, err := s.CreateUser(ctx, admin, u, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateOrg(ctx, admin, "acme", "ann"); err != nil {
		t.Fatal(err)
	}
	for round := range 30 {
		for _, u := range []string{"ann", "ben"} {
			if err := s.SetMember(ctx, admin, "acme", u, "owner"); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for _, u := range []string{"ann", "ben"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.RemoveMember(ctx, admin, "acme", u); err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		ms, err := s.Members(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("round %d: both owners removed", round)
		}
	}
}

// One schema history: every version exists for both engines, under the
// same name, so a version number means the same schema on either.
func TestMigrationsMatch(t *testing.T) {
	lite, err := migrations(sqlite)
	if err != nil {
		t.Fatal(err)
	}
	pgm, err := migrations(postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pgm) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL", len(lite), len(pgm))
	}
	for i := range lite {
		if lite[i].name != pgm[i].name {
			t.Errorf("version %d: %s on SQLite, %s on PostgreSQL", i+1, lite[i].name, pgm[i].name)
		}
	}
}

func TestMetaGenerationOnlyGrows(t *testing.T) { onBoth(t, testMetaGenerationOnlyGrows) }

// A late delivery of an older generation does not move a server back.
func testMetaGenerationOnlyGrows(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	srv, err := s.AddServer(ctx, admin, Server{Name: "n1", Host: "127.0.0.1", Port: 22, User: "cpm", Path: "/x", Role: "neighbor"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []int64{5, 3} {
		if err := s.SetMetaGeneration(ctx, srv.ID, g); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Servers(ctx)
	if err != nil || len(list) != 1 || list[0].MetaGeneration != 5 {
		t.Fatalf("servers %+v %v; want meta generation 5", list, err)
	}
}
