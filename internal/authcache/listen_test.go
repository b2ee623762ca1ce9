package authcache

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the lock holder's connection
	"github.com/rs/zerolog"

	"cpm/internal/pgtest"
	"cpm/internal/store"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// The listener on a real PostgreSQL: the cache becomes current; once a
// change's WaitAuthApplied returns, the cache has been emptied of what
// predates it (the acknowledgement comes after the emptying); when the
// listener stops, the cache stops answering.
func TestListenEmptiesBeforeAcknowledging(t *testing.T) {
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := New()
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); Listen(lctx, st, c, "test", zerolog.Nop()) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !c.Current(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never current")
		}
	}
	calls := 0
	for range 3 {
		Fetch(c, "k", fill(&calls, "before"))
	}
	if calls != 1 {
		t.Fatalf("%d fills for three reads", calls)
	}
	for i, name := range []string{"alice", "bob", "carol"} {
		if _, err := st.CreateUser(ctx, store.Actor{Name: "test"}, name, false, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := st.WaitAuthApplied(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > store.AuthWindow {
			t.Errorf("acknowledged after %v: the listener did not acknowledge, the wait ran out", took)
		}
		if v, _ := Fetch(c, "k", fill(&calls, name)); v != name {
			t.Errorf("change %d: the cache answered %q after the change was acknowledged", i, v)
		}
	}
	stop()
	<-done
	if c.Current() || c.Len() != 0 {
		t.Errorf("after the listener stopped: current %v, %d entries", c.Current(), c.Len())
	}
}

// A listener that stops has stopped answering from its cache before its
// row leaves auth_listeners (after which no waiter waits for it): its
// DELETE is held on a row lock here while the cache is looked at.
func TestListenerStopsAnsweringBeforeItsRowGoes(t *testing.T) {
	ctx := context.Background()
	dsn := pg.Database(t)
	st, err := store.InitAt(ctx, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := New()
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); Listen(lctx, st, c, "held", zerolog.Nop()) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !c.Current(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never current")
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // releases the lock
	if _, err := tx.ExecContext(ctx, `SELECT id FROM auth_listeners WHERE name = 'held' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	stop()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM auth_listeners WHERE id%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener's DELETE never came")
		}
	}
	if c.Current() {
		t.Error("the cache still answers while its listener's row is being removed")
	}
}

// A listener held back after a notification: the change's wait does not
// return before it acknowledges (released after 500 ms) or before the
// bound (never released), and once the wait has returned the cache never
// answers with what predates the change.
func TestWaitOutlastsAHeldListener(t *testing.T) {
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := New()
	hold, release := make(chan chan struct{}, 1), make(chan struct{})
	held := func() {
		select {
		case r := <-hold:
			<-r
		default:
		}
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); listen(lctx, st, c, "held", zerolog.Nop(), held) }()
	defer func() { close(release); stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !c.Current(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never current")
		}
	}
	for i, hold500 := range []bool{true, false} {
		calls := 0
		Fetch(c, "k", fill(&calls, "before")) //nolint:errcheck // fill cannot fail
		r := release
		if hold500 {
			r = make(chan struct{})
			time.AfterFunc(500*time.Millisecond, func() { close(r) })
		}
		hold <- r
		if _, err := st.CreateUser(ctx, store.Actor{Name: "test"}, "u"+strconv.Itoa(i), false, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := st.WaitAuthApplied(ctx); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if hold500 && took < 400*time.Millisecond || !hold500 && took < store.AuthWindow {
			t.Errorf("held listener (released after 500 ms: %v): the wait returned after %v", hold500, took)
		}
		for until := time.Now().Add(time.Second); time.Now().Before(until); time.Sleep(50 * time.Millisecond) {
			if v, _ := Fetch(c, "k", fill(&calls, "after")); v != "after" {
				t.Fatalf("held listener (released after 500 ms: %v): the cache answered %q after the wait returned", hold500, v)
			}
		}
	}
}
