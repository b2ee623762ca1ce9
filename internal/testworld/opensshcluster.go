package testworld

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"testing"
	"time"
)

// OpenSSHNode is a cluster node run the OpenSSH way: a real sshd on the
// node's advertised address, with the cluster's host key, sending users'
// keys and the other nodes' replication keys through cpm-shell's forced
// commands (cpm-admin authorized-keys), and `cpm-shell replicate` beside
// it (workers, lease, elections, handovers). No cpm-shell serve runs.
type OpenSSHNode struct {
	*World
	Name string
	Addr string // where its sshd listens, which it advertises
	SSHD *SSHD
	// Workers is its cpm-shell replicate.
	Workers *Server
}

// NewOpenSSHCluster initialises n nodes the OpenSSH way on the database
// bin.OnDatabase names, node i named node-i on 127.0.0.(i+1), the nodes
// logging in to each other as the current user; extra flags go to every
// cpm-shell replicate. It waits until `node list` shows them all up.
// Every process stops at the test's cleanup.
func NewOpenSSHCluster(t testing.TB, bin Bin, n int, extra ...string) []*OpenSSHNode {
	t.Helper()
	if bin.database == nil {
		t.Fatal("testworld: a cluster needs PostgreSQL: pass bin.OnDatabase(...)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	database, root := bin.database(t), t.TempDir()
	var nodes []*OpenSSHNode
	for i := 1; i <= n; i++ {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		nd := &OpenSSHNode{Name: fmt.Sprintf("node-%d", i), Addr: net.JoinHostPort(host, fmt.Sprint(FreePort(t, host)))}
		dir := filepath.Join(root, nd.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		nd.World = &World{T: t, Bin: bin, Root: dir, DataDir: filepath.Join(dir, "data"), Database: database}
		nd.MustAdmin("init", "--database", database, "--node-name", nd.Name, "--advertise", u.Username+"@"+nd.Addr)
		nodes = append(nodes, nd)
	}
	// Every node joined: each sshd's authorized_keys names them all.
	for _, nd := range nodes {
		nd.SSHD = nd.startSSHDWith(sshdOptions{name: "sshd", hostKey: filepath.Join(nd.DataDir, "ssh_host_ed25519_key"), addr: nd.Addr})
		nd.Workers = nd.StartReplicate(extra...)
	}
	waitNodesUp(t, nodes[0].World, n)
	return nodes
}

// RefreshKeys rewrites every node's authorized_keys (after keys changed).
func RefreshKeys(nodes []*OpenSSHNode) {
	for _, nd := range nodes {
		nd.SSHD.Refresh()
	}
}

// waitNodesUp waits up to 30 s until `node list` on w shows n nodes up.
func waitNodesUp(t testing.TB, w *World, n int) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r := w.Admin("", "node", "list", "--json")
		out = r.Stdout + r.Stderr
		var rows []struct{ State string }
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rows) != nil || len(rows) != n {
			continue
		}
		up := 0
		for _, row := range rows {
			if row.State == "up" {
				up++
			}
		}
		if up == n {
			return
		}
	}
	t.Fatalf("testworld: the nodes are not all up after 30 s:\n%s", out)
}
