package store

import (
	"context"
	"database/sql/driver"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"
)

// Every table a cached query reads is in AuthTables, and only those: a
// table missing there would have no trigger, and a change to it would
// leave the nodes' caches stale.
func TestAuthTablesAreWhatTheCachedQueriesRead(t *testing.T) {
	from := regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([a-z_]+)`)
	var read []string
	for _, qs := range cachedQueries {
		for _, q := range qs {
			for _, m := range from.FindAllStringSubmatch(q, -1) {
				if !slices.Contains(read, m[1]) {
					read = append(read, m[1])
				}
			}
		}
	}
	slices.Sort(read)
	want := slices.Clone(AuthTables)
	slices.Sort(want)
	if !slices.Equal(read, want) {
		t.Errorf("cached queries read %v; AuthTables %v", read, want)
	}
}

// cachedQueries has the statements of each CachedReads method, and of
// nothing else.
func TestCachedQueriesAreTheCachedReads(t *testing.T) {
	var methods, listed []string
	ty := reflect.TypeFor[CachedReads]()
	for i := range ty.NumMethod() {
		methods = append(methods, ty.Method(i).Name)
	}
	for m := range cachedQueries {
		listed = append(listed, m)
	}
	slices.Sort(methods)
	slices.Sort(listed)
	if !slices.Equal(methods, listed) {
		t.Errorf("CachedReads has %v; cachedQueries lists %v", methods, listed)
	}
}

// The repos trigger fires only on an UPDATE of the columns it names (a
// push's generation bump must not empty the caches): every repos column
// a cached query reads (as r.column) is among them.
func TestReposTriggerWatchesEveryColumnRead(t *testing.T) {
	ctx := context.Background()
	s := newPostgresStore(t)
	var watched []string
	rows, err := s.db.QueryContext(ctx, `SELECT a.attname FROM pg_trigger g
		JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = ANY (g.tgattr::int2[])
		WHERE g.tgname = 'cpm_auth_repos'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		watched = append(watched, c)
	}
	if err := rows.Err(); err != nil || len(watched) == 0 {
		t.Fatalf("trigger columns %v, %v", watched, err)
	}
	col := regexp.MustCompile(`\br\.([a-z_]+)`)
	for _, q := range cachedQueries["RepoFacts"] {
		for _, m := range col.FindAllStringSubmatch(q, -1) {
			if !slices.Contains(watched, m[1]) {
				t.Errorf("repos.%s is read by a cached query but not watched (trigger on %v)", m[1], watched)
			}
		}
	}
}

// A listener on a fresh PostgreSQL store.
func authListener(t *testing.T) (*Store, *AuthListener) {
	t.Helper()
	s := newPostgresStore(t)
	l, err := s.ListenAuth(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return s, l
}

// notifies checks that write moves the version and reaches l.
func notifies(t *testing.T, s *Store, l *AuthListener, what string, write func() error) {
	t.Helper()
	ctx := context.Background()
	before, _ := s.AuthVersion(ctx)
	if err := write(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got, err := l.Wait(ctx, 5*time.Second); !got || err != nil {
		t.Errorf("%s: no notification (%v)", what, err)
	}
	if after, _ := s.AuthVersion(ctx); after <= before {
		t.Errorf("%s: version %d → %d", what, before, after)
	}
}

// quiet checks that write neither moves the version nor reaches l.
func quiet(t *testing.T, s *Store, l *AuthListener, what string, write func() error) {
	t.Helper()
	ctx := context.Background()
	before, _ := s.AuthVersion(ctx)
	if err := write(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got, err := l.Wait(ctx, 300*time.Millisecond); got || err != nil {
		t.Errorf("%s notified (%v)", what, err)
	}
	if after, _ := s.AuthVersion(ctx); after != before {
		t.Errorf("%s moved the version %d → %d", what, before, after)
	}
}

// execAll runs statements one by one on the store's pool.
func (s *Store) execAll(ctx context.Context, qs ...string) error {
	for _, q := range qs {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// On PostgreSQL each of the AuthTables has the trigger, always enabled,
// and a write to it (any statement, even one that changes no row, and a
// TRUNCATE) notifies the listeners and moves the version at commit.
func TestAuthTriggersNotify(t *testing.T) {
	ctx := context.Background()
	s, l := authListener(t)
	for _, table := range AuthTables {
		var n int
		err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid
			WHERE g.tgrelid = ?::regclass AND p.proname = 'cpm_auth_changed' AND NOT g.tgisinternal
			AND g.tgenabled = 'A'`, table).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("%s: %d cpm_auth_changed triggers enabled always, %v", table, n, err)
		}
	}
	writes := []string{`UPDATE repos SET name = name WHERE false`, `UPDATE repos SET public = public WHERE false`,
		`UPDATE repos SET org_id = org_id WHERE false`, `TRUNCATE grants`, `TRUNCATE memberships`}
	for _, table := range AuthTables {
		writes = append(writes, `DELETE FROM `+table+` WHERE false`)
	}
	for _, w := range writes {
		notifies(t, s, l, w, func() error { return s.execAll(ctx, w) })
	}
}

// A rolled-back write and a push's generation bump move nothing.
func TestAuthTriggersQuiet(t *testing.T) {
	ctx := context.Background()
	s, l := authListener(t)
	quiet(t, s, l, "a rolled-back write", func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ssh_keys WHERE false`); err != nil {
			return err
		}
		return tx.Rollback()
	})
	quiet(t, s, l, "a push's generation bump", func() error {
		return s.execAll(ctx, `UPDATE repos SET generation = generation + 1 WHERE false`)
	})
}

// One transaction, many statements: one version, one notification; a
// savepoint rolled back takes its bump back, and the next statement
// bumps.
func TestAuthTriggersOneBumpPerTransaction(t *testing.T) {
	ctx := context.Background()
	s, l := authListener(t)
	before, _ := s.AuthVersion(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SAVEPOINT a`, `DELETE FROM orgs WHERE false`, `ROLLBACK TO SAVEPOINT a`,
		`DELETE FROM users WHERE false`, `DELETE FROM grants WHERE false`, `DELETE FROM repos WHERE false`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.AuthVersion(ctx); after != before+1 {
		t.Errorf("one transaction moved the version %d → %d", before, after)
	}
	if got, _ := l.Wait(ctx, 5*time.Second); !got {
		t.Error("one transaction: no notification")
	}
	quiet(t, s, l, "nothing more", func() error { return nil })
}

// What a session can set does not stop the bump: replica mode (what
// pg_restore --disable-triggers and logical replication's apply use),
// the one-bump flag set for the whole session, and a search path that
// puts another auth_version first. Each on a connection of its own,
// closed after, so nothing leaks into the pool.
func TestAuthTriggersCannotBeSkipped(t *testing.T) {
	ctx := context.Background()
	s, l := authListener(t)
	if err := s.execAll(ctx, `CREATE SCHEMA decoy`, `CREATE TABLE decoy.auth_version (one INTEGER, v BIGINT)`,
		`INSERT INTO decoy.auth_version VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{`SET session_replication_role = replica`, `SET cpm.auth_changed = 'yes'`,
		`SET search_path = decoy, public`} {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, set); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{`DELETE FROM ssh_keys WHERE false`, `TRUNCATE grants`} {
			notifies(t, s, l, set+"; "+w, func() error {
				_, err := c.ExecContext(ctx, w)
				return err
			})
		}
		c.Raw(func(any) error { return driver.ErrBadConn }) //nolint:errcheck // drops the connection from the pool
		c.Close()
	}
}

// The wait of a command that changed access: at once on SQLite; at once on PostgreSQL
// when every live listener has acknowledged; when one never does, after
// the confirm window and its margin, no sooner and not much later.
func TestWaitAuthApplied(t *testing.T) {
	ctx := context.Background()
	if err := newStore(t).WaitAuthApplied(ctx); err != nil {
		t.Fatal(err)
	}
	s, l := authListener(t)
	if _, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE false`); err != nil {
		t.Fatal(err)
	}
	v, _ := s.AuthVersion(ctx)
	if _, err := l.Confirm(ctx, v); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.WaitAuthApplied(ctx); err != nil || time.Since(start) > time.Second {
		t.Errorf("acknowledged: waited %v, %v", time.Since(start), err)
	}
	// A change the listener is seen alive for but never acknowledges.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE false`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Confirm(ctx, v); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err := s.WaitAuthApplied(ctx)
	took := time.Since(start)
	if err != nil || took < AuthWindow || took > AuthWindow+authMargin+time.Second {
		t.Errorf("unacknowledged: waited %v, %v; want about %v", took, err, AuthWindow+authMargin)
	}
	// A live listener stamps seen_at up to a round trip and a confirm
	// apart: one stamped that long ago is still waited for.
	if _, err := s.db.ExecContext(ctx, `UPDATE auth_listeners SET seen_at = now() - interval '3 seconds'`); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := s.WaitAuthApplied(ctx); err != nil || time.Since(start) < AuthWindow {
		t.Errorf("listener stamped 3 s ago: waited %v, %v; want about %v", time.Since(start), err, AuthWindow+authMargin)
	}
	// A listener not seen for longer than that is not waited for.
	if _, err := s.db.ExecContext(ctx, `UPDATE auth_listeners SET seen_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := s.WaitAuthApplied(ctx); err != nil || time.Since(start) > time.Second {
		t.Errorf("stale listener: waited %v, %v", time.Since(start), err)
	}
}

// OnChange runs after each committed change, before it returns, and not
// for a change that fails.
func TestOnChangeRunsAfterCommit(t *testing.T) {
	onBoth(t, func(t *testing.T, open func(*testing.T) *Store) {
		ctx := context.Background()
		s := open(t)
		calls := 0
		s.OnChange(func() { calls++ })
		if _, err := s.CreateUser(ctx, admin, "alice", false, nil); err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Errorf("after a change: %d calls", calls)
		}
		if _, err := s.CreateUser(ctx, admin, "alice", false, nil); err == nil {
			t.Fatal("a second alice")
		}
		if calls != 1 {
			t.Errorf("after a failed change: %d calls", calls)
		}
	})
}
