package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Every PostgreSQL connection asks the server to notice a dead client
// within seconds (keepalives, a user timeout) and to end a session left
// idle in a transaction: a node whose machine dies while holding a
// repository's row frees it soon.
func TestPostgresConnectionsNoticeDeadPeers(t *testing.T) {
	s := newPostgresStore(t)
	for _, kv := range deadPeerLimits() {
		var got string
		if err := s.db.QueryRowContext(context.Background(), `SELECT current_setting('`+kv[0]+`')`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3",
			"tcp_user_timeout": "15000", "idle_in_transaction_session_timeout": "1min"}[kv[0]]
		if got != want {
			t.Errorf("%s = %q, want %q", kv[0], got, want)
		}
	}
}

// A URL's own setting wins over the default.
func TestWithDeadPeerLimitsKeepsTheURLs(t *testing.T) {
	got := withDeadPeerLimits("postgres://u@127.0.0.1:5432/db?tcp_keepalives_idle=30")
	for _, want := range []string{"tcp_keepalives_idle=30", "tcp_keepalives_count=3", "idle_in_transaction_session_timeout=60000"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s", got, want)
		}
	}
}

// A replica write asks the server to end its transaction a little after
// its deadline, should its process be gone and unable to roll back.
func TestReplicaWriteBoundOnTheServer(t *testing.T) {
	ctx := context.Background()
	s, nodes, r := replicated(t)
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	w, err := s.BeginReplicaWrite(wctx, r.ID, nodes[0].ID, nodes[1].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var idle int64
	if err := w.tx.QueryRowContext(ctx, `SELECT setting::bigint FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'`).Scan(&idle); err != nil {
		t.Fatal(err)
	}
	if idle < 2000 || idle > 3000 {
		t.Errorf("idle_in_transaction_session_timeout in a replica write with 1 s left: %d ms", idle)
	}
	w.Rollback()
}
