package lease

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"

	"cpm/internal/store"
)

// node is a cluster of one node on a fresh database of the test server,
// with a second connection of the test's own that can hold the node's
// row locked: the node's renewals then hang, as with a database that
// takes no writes.
type node struct {
	st  *store.Store
	id  int64
	raw *sql.DB
	tx  *sql.Tx
}

func newNode(t *testing.T) *node {
	t.Helper()
	ctx := context.Background()
	url := pg.Database(t)
	st, err := store.InitAt(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, _, err := st.JoinCluster(ctx, store.Actor{Name: "test"}, store.NodeSpec{Name: "n1", Host: "127.0.0.2", Port: 2222,
		PeerKey: "ssh-ed25519 AAAA1", PeerFingerprint: "SHA256:1", HostKeyPEM: "pem", HostKey: "ssh-ed25519 AAAAh"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &node{st: st, id: srv.ID, raw: raw}
}

// block holds the node's row until unblock.
func (n *node) block(t *testing.T) {
	t.Helper()
	tx, err := n.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT 1 FROM servers WHERE id = $1 FOR UPDATE`, n.id); err != nil {
		t.Fatal(err)
	}
	n.tx = tx
}

func (n *node) unblock() { n.tx.Rollback() }

func TestKeeperHeldOnlyAfterARenewal(t *testing.T) {
	n := newNode(t)
	var latencies []time.Duration
	k := &Keeper{Store: n.st, Node: n.id, Lease: 400 * time.Millisecond, Renewed: func(d time.Duration) { latencies = append(latencies, d) }}
	if k.Held() {
		t.Fatal("held before any renewal")
	}
	if err := k.Renew(context.Background()); err != nil || !k.Held() || len(latencies) != 1 {
		t.Fatalf("after a renewal: %v held %v latencies %v", err, k.Held(), latencies)
	}
	// lease 400ms − margin 100ms: held for at most 300ms from the
	// renewal's start.
	time.Sleep(320 * time.Millisecond)
	if k.Held() {
		t.Error("held past the lease minus the margin")
	}
	if err := (&Keeper{Store: n.st, Node: n.id + 100, Lease: time.Second}).Renew(context.Background()); err == nil {
		t.Error("renewed the lease of no node")
	}
}

// A renewal that hangs gives up within half the lease and never extends
// the lease; one that answers late counts from when it started.
func TestKeeperCountsFromTheStart(t *testing.T) {
	n := newNode(t)
	k := &Keeper{Store: n.st, Node: n.id, Lease: 400 * time.Millisecond}
	n.block(t)
	t0 := time.Now()
	if err := k.Renew(context.Background()); err == nil || k.Held() || time.Since(t0) > 300*time.Millisecond {
		t.Fatalf("a hanging renewal: %v, held %v, after %s", err, k.Held(), time.Since(t0))
	}
	n.unblock()
	n.block(t)
	start := time.Now()
	go func() { time.Sleep(150 * time.Millisecond); n.unblock() }()
	if err := k.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k.Held() {
		time.Sleep(5 * time.Millisecond)
	}
	if held := time.Since(start); held > 330*time.Millisecond {
		t.Errorf("held for %s after the renewal started, want at most lease − margin", held)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Run renews every fifth of the lease, loses the lease while the
// database does not answer, holds it again after, and logs only the
// changes.
func TestKeeperRun(t *testing.T) {
	n := newNode(t)
	var log logBuffer
	k := &Keeper{Store: n.st, Node: n.id, Lease: 500 * time.Millisecond, Log: zerolog.New(&log)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.Run(ctx) }()
	waitUntil(t, "held", k.Held)
	nodes, _ := n.st.Nodes(ctx)
	if len(nodes) != 1 || nodes[0].State() != store.NodeUp {
		t.Errorf("node list: %+v", nodes)
	}
	n.block(t)
	waitUntil(t, "lost", func() bool { return !k.Held() })
	waitUntil(t, "logged lost", func() bool { return strings.Contains(log.String(), "lease lost") })
	n.unblock()
	waitUntil(t, "held again", k.Held)
	waitUntil(t, "logged held twice", func() bool { return strings.Count(log.String(), `"lease held"`) == 2 })
	cancel()
	<-done
	if got := strings.Count(log.String(), "lease lost"); got != 1 {
		t.Errorf("lost logged %d times:\n%s", got, log.String())
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("not %s within 10 s", what)
}
