package admin

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"cpm/internal/access"
	"cpm/internal/datadir"
	"cpm/internal/gateway"
	"cpm/internal/node"
	"cpm/internal/replica"
	"cpm/internal/sshkey"
	"cpm/internal/store"
)

func TestParseAdvertise(t *testing.T) {
	for _, c := range []struct {
		in   string
		want advertised
		err  string
	}{
		{"127.0.0.2:2222", advertised{"cpm", "127.0.0.2", 2222}, ""},
		{"node-1.example.org:22", advertised{"cpm", "node-1.example.org", 22}, ""},
		{"[::1]:2222", advertised{"cpm", "::1", 2222}, ""},
		{"git@node-1.example.org:22", advertised{"git", "node-1.example.org", 22}, ""},
		{"127.0.0.2", advertised{}, "want [USER@]HOST:PORT"},
		{"127.0.0.2:x", advertised{}, "bad port"},
		{"127.0.0.2:0", advertised{}, `--advertise "127.0.0.2:0": invalid port 0`},
		{"127.0.0.2:65536", advertised{}, "invalid port 65536"},
		{":2222", advertised{}, `invalid host ""`},
		{"-oProxyCommand=x:22", advertised{}, "invalid host"},
		{"a b:22", advertised{}, "invalid host"},
		{"-lroot@127.0.0.2:22", advertised{}, `invalid user "-lroot"`},
		{"@127.0.0.2:22", advertised{}, "invalid user"},
		{"a@b@127.0.0.2:22", advertised{}, "invalid host"},
	} {
		got, err := parseAdvertise(c.in)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: %+v %v, want %+v %q", c.in, got, err, c.want, c.err)
		}
	}
}

// The doctor of a cluster node names the nodes whose lease ran out (or
// that never had one), by the database's clock.
func TestDoctorNamesDownNodes(t *testing.T) {
	ctx := context.Background()
	db := pg.Database(t)
	dir, _ := datadir.New(t.TempDir())
	st, _, err := Init(ctx, dir, db, "")
	if err != nil {
		t.Fatal(err)
	}
	spec := ClusterSpec{NodeName: "n1", Advertise: "127.0.0.2:2222", Replicas: 2, Lease: 10 * time.Second}
	if ok, err := ClusterInit(dir, db, &spec); !ok || err != nil {
		t.Fatalf("ClusterInit: %v %v", ok, err)
	}
	if _, err := JoinCluster(ctx, st, dir, store.Actor{Name: "test"}, spec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	s, err := Open(ctx, dir, db, store.Actor{Name: "test"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PlaceAs(ctx, dir, 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	down := func(when string) {
		if p := s.checkNodes(ctx); len(p) != 1 || !strings.Contains(p[0], "node n1 (127.0.0.2:2222) is down") {
			t.Errorf("%s: %v", when, p)
		}
	}
	down("joined, never served")
	self := nodeID(ctx, t, s)
	if err := s.Store.RenewLease(ctx, self, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p := s.checkNodes(ctx); len(p) != 0 {
		t.Errorf("its lease renewed: %v", p)
	}
	if err := s.Store.RenewLease(ctx, self, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	down("its lease ran out")
	if b, err := os.ReadFile(dir.NodeFile()); err != nil || string(b) != "n1\n" {
		t.Errorf("DATA/node: %q %v", b, err)
	}
}

// nodeID is the id of the node s's data directory is.
func nodeID(ctx context.Context, t *testing.T, s *Service) int64 {
	t.Helper()
	n, err := s.Store.NodeByName(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return n.ID
}

// --advertise USER@HOST:PORT records the account the other nodes log in
// as (OpenSSH's sshd wants a real one); init run again without
// --advertise keeps it. The node's replication key is what
// authorized-keys lets in for it, and no other key passes as a node's.
func TestJoinClusterAccountAndNodeKey(t *testing.T) {
	ctx := context.Background()
	db := pg.Database(t)
	dir, _ := datadir.New(t.TempDir())
	st, _, err := Init(ctx, dir, db, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	join := func(advertise string) store.Server {
		t.Helper()
		spec := ClusterSpec{NodeName: "n1", Advertise: advertise, Replicas: 2, Lease: 10 * time.Second}
		if ok, err := ClusterInit(dir, db, &spec); !ok || err != nil {
			t.Fatalf("ClusterInit %q: %v %v", advertise, ok, err)
		}
		j, err := JoinCluster(ctx, st, dir, store.Actor{Name: "test"}, spec)
		if err != nil {
			t.Fatal(err)
		}
		return j.Node
	}
	if n := join("git@127.0.0.2:22"); n.User != "git" || n.Host != "127.0.0.2" || n.Port != 22 {
		t.Fatalf("joined as %+v", n)
	}
	if n := join(""); n.User != "git" {
		t.Fatalf("init again without --advertise: %+v", n)
	}
	n := join("127.0.0.2:2222")
	if n.User != "cpm" {
		t.Fatalf("--advertise without an account: %+v", n)
	}
	audit, err := st.Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var joined map[string]any
	for i := len(audit) - 1; i >= 0; i-- {
		if audit[i].Action == "node.join" {
			joined = audit[i].Details
		}
	}
	if joined["ssh_user"] != "cpm" {
		t.Errorf("the last join's audit row: %+v", joined)
	}
	s := &Service{Store: st}
	keys, err := s.NodeKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].PeerKey == "" || keys[0].PeerFingerprint != n.PeerFingerprint {
		t.Fatalf("NodeKeys: %+v %v", keys, err)
	}
	if got, err := s.NodeKey(ctx, n.PeerFingerprint); err != nil || got.Name != "n1" {
		t.Errorf("NodeKey(n1's key): %+v %v", got, err)
	}
	if _, err := s.NodeKey(ctx, "SHA256:"+strings.Repeat("A", 43)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("NodeKey(an unknown key): %v", err)
	}
	peer := &node.Node{Gateway: &gateway.Gateway{Access: access.New(st, replica.New(dir.Peers()))}}
	if id, err := peer.PeerIdentity(ctx, n.PeerFingerprint); err != nil || !id.Node {
		t.Errorf("PeerIdentity(n1's key): %+v %v", id, err)
	}
	// A neighbour's key is a peer's too, but no node's: neither lets it
	// run the nodes' commands.
	nb := freshKey(t)
	_, err = st.AddServer(ctx, store.Actor{Name: "test"}, store.Server{Name: "nb", Host: "127.0.0.3", Port: 22, User: "cpm",
		Path: "/srv/cpm", Role: store.Neighbor, HostKey: freshKey(t).Line(), Approved: true,
		PeerKey: nb.Line(), PeerFingerprint: nb.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.NodeKey(ctx, nb.Fingerprint); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("NodeKey(a neighbour's key): %+v %v", got, err)
	}
	if id, err := peer.PeerIdentity(ctx, nb.Fingerprint); err == nil {
		t.Errorf("PeerIdentity(a neighbour's key): %+v", id)
	}
	// A node row that cannot make an authorized_keys line (its
	// fingerprint is no fingerprint) is left out, and only it.
	bad := freshKey(t)
	_, _, err = st.JoinCluster(ctx, store.Actor{Name: "test"}, store.NodeSpec{Name: "a-bad", Host: "127.0.0.4", Port: 2222,
		PeerKey: bad.Line(), PeerFingerprint: "SHA256:x' y", HostKeyPEM: "x", HostKey: "y"})
	if err != nil {
		t.Fatal(err)
	}
	var warned []error
	lines, err := s.NodeLines(ctx, "/usr/bin/cpm-shell", dir.String(), func(err error) { warned = append(warned, err) })
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "peer-"+n.PeerFingerprint) ||
		len(warned) != 1 || !strings.Contains(warned[0].Error(), "a-bad") {
		t.Errorf("NodeLines with a bad row: %q %v; warned %v", lines, err, warned)
	}
}

// A key is a user's or a node's, never both: sshd would let it in as
// either, and a user holding a node's key would pass for the node.
func TestNodeKeyIsNoUserKey(t *testing.T) {
	ctx := context.Background()
	db := pg.Database(t)
	dir, _ := datadir.New(t.TempDir())
	st, _, err := Init(ctx, dir, db, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec := ClusterSpec{NodeName: "n1", Advertise: "127.0.0.2:2222", Replicas: 2, Lease: 10 * time.Second}
	if ok, err := ClusterInit(dir, db, &spec); !ok || err != nil {
		t.Fatalf("ClusterInit: %v %v", ok, err)
	}
	j, err := JoinCluster(ctx, st, dir, store.Actor{Name: "test"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Store: st}
	nodeKey, err := sshkey.Parse([]byte(j.Node.PeerKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "alice", false, &nodeKey); !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "node n1") {
		t.Errorf("a user with n1's replication key: %v", err)
	}
	if _, err := s.AddUser(ctx, "bob", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKey(ctx, "bob", nodeKey); !errors.Is(err, store.ErrExists) {
		t.Errorf("bob adds n1's replication key: %v", err)
	}
	userKey := freshKey(t)
	if _, err := s.AddKey(ctx, "bob", userKey); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.JoinCluster(ctx, store.Actor{Name: "test"}, store.NodeSpec{Name: "n2", Host: "127.0.0.3", Port: 2222,
		PeerKey: userKey.Line(), PeerFingerprint: userKey.Fingerprint, HostKeyPEM: "x", HostKey: "y"})
	if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "bob") {
		t.Errorf("a node joins with bob's key: %v", err)
	}
}

// freshKey is a fresh ed25519 public key.
func freshKey(t *testing.T) sshkey.Key {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sshkey.Parse(ssh.MarshalAuthorizedKey(sp))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
