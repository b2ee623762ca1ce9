package hook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/syncack"
)

// clusterRepo is node n1's data directory in a two-node cluster with
// acme/web placed on n1 (n2 its replica), and n1's server row.
func clusterRepo(t *testing.T) (*store.Store, datadir.Dir, store.Server) {
	t.Helper()
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := store.Actor{Name: "test"}
	var n1 store.Server
	for i, name := range []string{"n1", "n2"} {
		n, _, err := st.JoinCluster(ctx, a, store.NodeSpec{Name: name, Host: fmt.Sprintf("127.0.0.%d", i+2), Port: 2222,
			PeerKey: "ssh-ed25519 AAAA" + name, PeerFingerprint: "SHA256:" + name, HostKeyPEM: "pem", HostKey: "ssh-ed25519 AAAAhost"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			n1 = n
		}
	}
	st.CreateOrg(ctx, a, "acme", "")
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web", Placing: store.Placing{Node: "n1", Replicas: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	dir := datadir.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir.NodeFile(), []byte("n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return st, dir, n1
}

// post-receive on a cluster's primary: a push taken under a lease that
// ran out, or under an old epoch, is recorded nowhere and the client is
// told it will be kept as diverged; otherwise it is recorded and waits
// for the workers' answer, which the client sees. Nothing fails the push.
func TestReplicateOnAPrimary(t *testing.T) {
	ctx := context.Background()
	st, dir, n1 := clusterRepo(t)
	web := names.RepoPath{Org: "acme", Repo: "web"}
	generation := func() int64 {
		p, err := st.Placement(ctx, "n1", "acme", "web")
		if err != nil {
			t.Fatal(err)
		}
		return p.Generation
	}
	run := func(epoch string) string {
		var out bytes.Buffer
		Replicate(ctx, st, dir, web, func(k string) string {
			if k == EnvEpoch {
				return epoch
			}
			return ""
		}, &out)
		return out.String()
	}

	if out := run("0"); !strings.Contains(out, "cpm: warning: acme/web: this node lost its lease during the push") || !strings.Contains(out, "refs/cpm/diverged/") || generation() != 0 {
		t.Errorf("without a lease: %q, generation %d", out, generation())
	}
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if out := run("4"); !strings.Contains(out, "another node took the repository over") || generation() != 0 {
		t.Errorf("under an old epoch: %q, generation %d", out, generation())
	}
	if out := run("0"); !strings.Contains(out, "cpm: warning: not yet replicated to another node (the node's replication workers do not answer)") || generation() != 1 {
		t.Errorf("with nobody listening: %q, generation %d", out, generation())
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var asked syncack.Request
	if err := syncack.Listen(wctx, dir.SyncSocket(), time.Second, func(_ context.Context, req syncack.Request) syncack.Answer {
		asked = req
		return syncack.Answer{Replicated: []string{"n2"}}
	}); err != nil {
		t.Fatal(err)
	}
	if out := run("0"); out != "replicated to n2\n" || generation() != 2 {
		t.Errorf("acknowledged: %q, generation %d", out, generation())
	}
	if asked != (syncack.Request{Repo: "acme/web", Generation: 2, Epoch: 0}) {
		t.Errorf("asked %+v", asked)
	}
}

// Outside a cluster a push is queued as ever, silently.
func TestReplicateOutsideACluster(t *testing.T) {
	ctx := context.Background()
	dir := datadir.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(ctx, filepath.Join(string(dir), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := store.Actor{Name: "test"}
	st.CreateOrg(ctx, a, "acme", "")
	r, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Replicate(ctx, st, dir, names.RepoPath{Org: "acme", Repo: "web"}, func(string) string { return "" }, &out)
	if g, _ := st.RepoGeneration(ctx, r.ID); out.Len() != 0 || g != 1 {
		t.Errorf("outside a cluster: %q, generation %d", out.String(), g)
	}
}
