package authcache

import (
	"context"
	"os"
	"testing"
	"time"

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
