package peer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/names"
	"cpm/internal/pgtest"
	"cpm/internal/replica"
	"cpm/internal/repos"
	"cpm/internal/store"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// nodeCluster is a shared database with nodes n1, n2, n3 and acme/web
// created on n1 with one replica (n2: fewest replicas, ties by name),
// and a receiver for each node, each with a disk of its own.
func nodeCluster(t *testing.T) map[string]*Receiver {
	t.Helper()
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := store.Actor{Name: "test"}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		if _, _, err := st.JoinCluster(ctx, a, store.NodeSpec{Name: name, Host: fmt.Sprintf("127.0.0.%d", i+1), Port: 2222,
			PeerKey: "ssh-ed25519 AAAA" + name, PeerFingerprint: "SHA256:" + name, HostKeyPEM: "pem", HostKey: "ssh-ed25519 AAAAhost"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateOrg(ctx, a, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "Web",
		Placing: store.Placing{Node: "n1", Replicas: 1, Lease: time.Minute}}, nil); err != nil {
		t.Fatal(err)
	}
	out := map[string]*Receiver{}
	for _, name := range []string{"n1", "n2", "n3"} {
		dir := t.TempDir()
		set := replica.New(filepath.Join(dir, "peers"))
		t.Cleanup(func() { set.Close() })
		os.MkdirAll(filepath.Join(dir, "repos"), 0o700)
		out[name] = &Receiver{Store: st, Replicas: set, Disk: repos.Root{Dir: filepath.Join(dir, "repos")}, TempDir: dir, Node: name, Self: name}
	}
	return out
}

// A node's copy is this node's own repository, and only where the shared
// database makes this node a replica; only the primary writes it.
func TestNodeCopies(t *testing.T) {
	ctx := context.Background()
	rs := nodeCluster(t)
	web := names.RepoPath{Org: "acme", Repo: "web"}
	n1, n3 := Origin{Name: "n1", Node: true}, Origin{Name: "n3", Node: true}

	// The primary prepares its replica on n2, under the canonical name.
	if err := rs["n2"].Prepare(ctx, n1, web); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rs["n2"].Disk.Dir, "acme", "Web.git", "HEAD")); err != nil {
		t.Fatalf("prepared copy: %v", err)
	}
	if err := rs["n2"].Refs(ctx, n1, web, &bytes.Buffer{}); err != nil {
		t.Errorf("refs for the primary: %v", err)
	}
	c, cleanup, err := rs["n2"].Rsync(ctx, n1, web, true)
	if err != nil {
		t.Fatalf("rsync-in from the primary: %v", err)
	}
	cleanup()
	if c.Dir != filepath.Join(rs["n2"].Disk.Dir, "acme", "Web.git") {
		t.Errorf("rsync works in %s", c.Dir)
	}

	refused := []struct {
		name string
		do   func() error
		want string
	}{
		{"another node writes", func() error { return rs["n2"].Prepare(ctx, n3, web) }, "only its primary n1 writes"},
		{"another node rsyncs in", func() error { _, _, err := rs["n2"].Rsync(ctx, n3, web, true); return err }, "only its primary n1 writes"},
		{"a node that holds no replica", func() error { return rs["n3"].Prepare(ctx, n1, web) }, "n3 holds no replica"},
		{"the primary's own repository", func() error { return rs["n1"].Prepare(ctx, Origin{Name: "n2", Node: true}, web) }, "n1 is its primary"},
		{"not in the database", func() error { return rs["n2"].Prepare(ctx, n1, names.RepoPath{Org: "acme", Repo: "nope"}) }, "not a repository of this cluster"},
		{"the primary's name as a neighbour", func() error { return rs["n2"].Prepare(ctx, Origin{Name: "n1"}, web) }, "a repository of this node has that name"},
		{"outside a cluster", func() error {
			r := *rs["n2"]
			r.Self = ""
			return r.Prepare(ctx, n1, web)
		}, "in no cluster"},
	}
	for _, tt := range refused {
		if err := tt.do(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(rs["n3"].Disk.Dir, "acme")); err == nil {
		t.Error("a refused prepare made a folder")
	}
}
