package testworld

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BalancerSource is the address HAProxy connects to the nodes from: the
// one address whose PROXY headers the nodes accept.
const BalancerSource = "127.0.0.9"

// Cluster is several cpm nodes sharing one PostgreSQL database, node i
// (counted from 1) named node-i and serving ssh on 127.0.0.(i+1) at a port
// chosen at run time, with HAProxy in front of them all.
type Cluster struct {
	T        testing.TB
	Bin      Bin
	Database string
	Nodes    []*Node
	// KnownHosts pins one host key, node 1's, for every node and the
	// balancer: the clients of the cluster accept nothing else.
	KnownHosts string

	root     string
	balancer *Balancer
	opts     ClusterOptions
}

// ClusterOptions change how NewClusterWith builds a cluster.
type ClusterOptions struct {
	// DBLinks puts a DBLink between each node and PostgreSQL (the node's
	// data directory records the link's address), so that a test can cut
	// one node off the database (CutDatabase).
	DBLinks bool
	// Flags are added to every node's serve flags (settings such as
	// --lease).
	Flags []string
}

// Node is one node of a cluster: a data directory of its own (its World)
// and the cpm-shell serve running on it.
type Node struct {
	*World
	Name   string
	Addr   string // where it serves ssh and what it advertises to the other nodes
	Server *Server
	// DB is the node's link to PostgreSQL (ClusterOptions.DBLinks), or nil.
	DB    *DBLink
	flags []string
}

// NewCluster initialises n nodes on the database bin.OnDatabase names
// (the first creates the cluster, the others join it), starts them and
// HAProxy in front, configured from deploy/haproxy/haproxy.cfg. Every
// process stops at the test's cleanup.
func NewCluster(t testing.TB, bin Bin, n int) *Cluster {
	t.Helper()
	return NewClusterWith(t, bin, n, ClusterOptions{})
}

// NewClusterWith is NewCluster with options.
func NewClusterWith(t testing.TB, bin Bin, n int, opts ClusterOptions) *Cluster {
	t.Helper()
	if bin.database == nil {
		t.Fatal("testworld: a cluster needs PostgreSQL: pass bin.OnDatabase(...)")
	}
	c := &Cluster{T: t, Bin: bin, Database: bin.database(t), root: t.TempDir(), opts: opts}
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, c.initNode(i))
	}
	for _, nd := range c.Nodes {
		c.startNode(nd)
	}
	c.KnownHosts = filepath.Join(c.root, "known_hosts")
	c.pinClusterKey()
	c.balancer = startBalancer(t, c.root, c.Nodes)
	c.pinClusterKey()
	c.WaitUp()
	return c
}

// WaitUp waits up to 30 s until `node list` shows every node up (their
// workers' first heartbeats), so that placement sees them all.
func (c *Cluster) WaitUp() {
	c.T.Helper()
	waitNodesUp(c.T, c.Node(1).World, len(c.Nodes))
}

// initNode runs init for node i on a free port of its own loopback address.
func (c *Cluster) initNode(i int) *Node {
	c.T.Helper()
	host := fmt.Sprintf("127.0.0.%d", i+1)
	addr := net.JoinHostPort(host, fmt.Sprint(FreePort(c.T, host)))
	root := filepath.Join(c.root, fmt.Sprintf("node-%d", i))
	if err := os.MkdirAll(root, 0o700); err != nil {
		c.T.Fatal(err)
	}
	w := &World{T: c.T, Bin: c.Bin, Root: root, DataDir: filepath.Join(root, "data"), Database: c.Database}
	nd := &Node{World: w, Name: fmt.Sprintf("node-%d", i), Addr: addr, flags: slices.Clone(c.opts.Flags)}
	if c.opts.DBLinks {
		nd.DB = StartDBLink(c.T, host, dbHostPort(c.T, c.Database))
		via, err := nd.DB.Via(c.Database)
		if err != nil {
			c.T.Fatal(err)
		}
		w.Database = via
	}
	w.MustAdmin("init", "--database", w.Database, "--node-name", nd.Name, "--advertise", addr)
	return nd
}

// ServeFlags are the flags every node is served with: its own address,
// no git://, and PROXY headers from the balancer only (optional, so that
// tests and the other nodes may also connect directly).
func (nd *Node) ServeFlags() []string {
	return append([]string{"--listen", nd.Addr, "--git-listen", "",
		"--proxy-protocol", "optional", "--proxy-allow", BalancerSource + "/32"}, nd.flags...)
}

func (c *Cluster) startNode(nd *Node) {
	c.T.Helper()
	nd.Server = nd.StartServer(nd.ServeFlags()...)
	if c.KnownHosts != "" {
		nd.Server.KnownHosts = c.KnownHosts
	}
}

// pinClusterKey writes KnownHosts: node 1's host key for every node's
// address and the balancer's, and makes every node's clients use it.
func (c *Cluster) pinClusterKey() {
	c.T.Helper()
	pub, err := PublicHostKey(c.Nodes[0].DataDir)
	if err != nil {
		c.T.Fatal(err)
	}
	var hosts []string
	for _, nd := range c.Nodes {
		hosts = append(hosts, knownHostsPattern(nd.Addr))
	}
	if c.balancer != nil {
		hosts = append(hosts, knownHostsPattern(c.balancer.Addr))
	}
	line := strings.Join(hosts, ",") + " " + pub + "\n"
	if err := os.WriteFile(c.KnownHosts, []byte(line), 0o600); err != nil {
		c.T.Fatal(err)
	}
	for _, nd := range c.Nodes {
		nd.Server.KnownHosts = c.KnownHosts
	}
	if c.balancer != nil {
		c.balancer.knownHosts = c.KnownHosts
	}
}

func knownHostsPattern(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "[" + host + "]:" + port
}

// Node is node i, counted from 1.
func (c *Cluster) Node(i int) *Node {
	c.T.Helper()
	if i < 1 || i > len(c.Nodes) {
		c.T.Fatalf("testworld: no node %d in a cluster of %d", i, len(c.Nodes))
	}
	return c.Nodes[i-1]
}

// Admin runs cpm-admin on node i's data directory.
func (c *Cluster) Admin(i int, args ...string) Result {
	c.T.Helper()
	return c.Node(i).Admin("", args...)
}

// MustAdmin runs cpm-admin on node i and fails the test unless it succeeds.
func (c *Cluster) MustAdmin(i int, args ...string) string {
	c.T.Helper()
	return c.Node(i).MustAdmin(args...)
}

// Balancer is the HAProxy in front of the nodes.
func (c *Cluster) Balancer() *Balancer { return c.balancer }

// Client is a client of node i for key, the cluster's host key pinned.
func (c *Cluster) Client(i int, key Key) *Client { return c.Node(i).Server.Client(key) }

// KillNode stops node i's server at once (SIGKILL), as a crash would.
func (c *Cluster) KillNode(i int) {
	c.T.Helper()
	s := c.Node(i).Server
	s.Signal(syscall.SIGKILL)
	c.waitDead(i)
}

// KillMachine kills node i's server and every process it started (git,
// cpm-hook, ssh: they run in process groups of their own) with SIGKILL,
// as the death of its machine would.
func (c *Cluster) KillMachine(i int) {
	c.T.Helper()
	killTree(c.Node(i).Server.Pid())
	c.waitDead(i)
}

func (c *Cluster) waitDead(i int) {
	c.T.Helper()
	s := c.Node(i).Server
	if ok, _ := s.Wait(10 * time.Second); !ok {
		c.T.Fatalf("node %d did not die", i)
	}
}

// StartNode starts node i again after KillNode, on the same address and
// data directory.
func (c *Cluster) StartNode(i int) {
	c.T.Helper()
	nd := c.Node(i)
	if !nd.Server.Exited() {
		c.T.Fatalf("testworld: node %d still runs", i)
	}
	c.startNode(nd)
}

// CutDatabase cuts node i off PostgreSQL (its DBLink): every connection
// reset, new ones refused, until RestoreDatabase. The cluster must have
// been built with ClusterOptions.DBLinks.
func (c *Cluster) CutDatabase(i int) { c.dbLink(i).Cut() }

// RestoreDatabase reconnects node i to PostgreSQL.
func (c *Cluster) RestoreDatabase(i int) { c.dbLink(i).Restore() }

func (c *Cluster) dbLink(i int) *DBLink {
	c.T.Helper()
	nd := c.Node(i)
	if nd.DB == nil {
		c.T.Fatalf("testworld: node %d has no database link (ClusterOptions.DBLinks)", i)
	}
	return nd.DB
}

// dbHostPort is the HOST:PORT of a postgres:// URL.
func dbHostPort(t testing.TB, database string) string {
	t.Helper()
	u, err := url.Parse(database)
	if err != nil || u.Host == "" {
		t.Fatalf("testworld: database URL without a host: %v", err)
	}
	return u.Host
}

// RestartNode stops node i (if it runs) and starts it again on the same
// address, with extra flags added to its serve flags from now on.
func (c *Cluster) RestartNode(i int, extra ...string) {
	c.T.Helper()
	nd := c.Node(i)
	nd.Server.Stop()
	nd.flags = append(nd.flags, extra...)
	c.startNode(nd)
}
