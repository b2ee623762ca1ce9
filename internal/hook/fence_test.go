package hook

import (
	"context"
	"os"
	"testing"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
)

// pre-receive on a cluster node accepts a push only while the node's
// lease holds and it is the primary under the session's epoch.
func TestCheckFence(t *testing.T) {
	ctx := context.Background()
	st, err := store.InitAt(ctx, pg.Database(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := store.Actor{Name: "test"}
	var ids []int64
	for i, name := range []string{"n1", "n2"} {
		srv, _, err := st.JoinCluster(ctx, a, store.NodeSpec{Name: name, Host: "127.0.0." + string(rune('2'+i)), Port: 2222,
			PeerKey: "ssh-ed25519 AAAA" + name, PeerFingerprint: "SHA256:" + name, HostKeyPEM: "pem", HostKey: "ssh-ed25519 AAAAh"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, srv.ID)
	}
	st.CreateOrg(ctx, a, "acme", "")
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web", Placing: store.Placing{Node: "n1", Replicas: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	dir, _ := datadir.New(t.TempDir())
	if err := os.WriteFile(dir.NodeFile(), []byte("n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := names.RepoPath{Org: "acme", Repo: "web"}
	env := map[string]string{}
	check := func() error { return CheckFence(ctx, st, dir, repo, func(k string) string { return env[k] }) }

	if err := check(); err == nil || err.Error() != "this node lost its lease; try again" {
		t.Errorf("never renewed: %v", err)
	}
	renew := func(id int64, lease time.Duration) {
		if err := st.RenewLease(ctx, id, lease); err != nil {
			t.Fatal(err)
		}
	}
	renew(ids[0], time.Minute)
	renew(ids[1], time.Minute)
	if err := check(); err != nil {
		t.Errorf("the primary with its lease: %v", err)
	}
	env[EnvEpoch] = "0"
	if err := check(); err != nil {
		t.Errorf("under the current epoch: %v", err)
	}
	// n1 loses its lease, n2 (holding everything) takes over: epoch 1.
	renew(ids[0], time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if err := check(); err == nil || err.Error() != "this node lost its lease; try again" {
		t.Errorf("lease ran out: %v", err)
	}
	// n2 never synced: nobody qualifies until it holds a copy.
	if es, err := st.ElectPrimaries(ctx, a, 0); err != nil || len(es) != 0 {
		t.Fatalf("elected a replica that holds nothing: %+v %v", es, err)
	}
	where, _ := st.RepoWhere(ctx, "acme", "web")
	j, _ := st.JobFor(ctx, where.Replicas[0].Job.RepoID, ids[1])
	if err := st.Done(ctx, j, j.Generation, 0, "", 0); err != nil {
		t.Fatal(err)
	}
	if es, err := st.ElectPrimaries(ctx, a, 1); err != nil || len(es) != 1 || es[0].To != "n2" {
		t.Fatalf("election: %+v %v", es, err)
	}
	renew(ids[0], time.Minute) // n1 is back, under epoch 0
	if err := check(); err == nil || err.Error() != "acme/web moved to another node; try again" {
		t.Errorf("an old epoch: %v", err)
	}
	env[EnvEpoch] = "1"
	if err := check(); err == nil || err.Error() != "acme/web moved to another node; try again" {
		t.Errorf("not the primary: %v", err)
	}
	os.Remove(dir.NodeFile())
	if err := check(); err != nil {
		t.Errorf("outside a cluster: %v", err)
	}
}
