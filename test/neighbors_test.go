package test

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// freeLoopbackPort finds a port free on every listed loopback address.
func freeLoopbackPort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for _, h := range hosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

func TestNeighborDiscovery(t *testing.T) {
	port := freeLoopbackPort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	p := strconv.Itoa(port)
	a := testworld.New(t, bin)
	b := testworld.New(t, bin)
	// A node advertises its ssh port on the address that answered.
	srvA := a.StartServer("--listen", "127.0.0.2:0", "--git-listen", "127.0.0.2:"+p)
	srvB := b.StartServer("--listen", "127.0.0.3:0", "--git-listen", "127.0.0.3:"+p)
	// Not cpm: a plain TCP listener that accepts and says nothing...
	plain, err := net.Listen("tcp", "127.0.0.4:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// ...and a real git daemon.
	daemon := exec.Command("git", "daemon", "--listen=127.0.0.5", "--port="+p, "--export-all", "--base-path="+a.Root, "--reuseaddr")
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	waitFor(t, 10*time.Second, "git daemon", func() bool {
		c, err := net.Dial("tcp", "127.0.0.5:"+p)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	start := time.Now()
	nodes := jsonList(t, a, "neighbor", "discover", "127.0.0.0/29", "--port", p)
	t.Logf("discovery of a /29: %v", time.Since(start))
	if len(nodes) != 2 || nodes[0]["host"] != "127.0.0.2" || nodes[1]["host"] != "127.0.0.3" {
		t.Fatalf("found %v, want exactly the cpm nodes on 127.0.0.2 and 127.0.0.3", nodes)
	}
	for i, srv := range []*testworld.Server{srvA, srvB} {
		if fmt.Sprint(nodes[i]["ssh_port"]) != srv.Port() || nodes[i]["version"] == "" || nodes[i]["name"] == "" {
			t.Errorf("node %d: %v (ssh at %s)", i, nodes[i], srv.SSHAddr)
		}
	}
	// A real git client talking to a cpm git:// port is unaffected.
	if out, err := exec.Command("git", "ls-remote", "git://127.0.0.2:"+p+"/acme/none.git").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "repository not found") {
		t.Errorf("git client against a cpm node: %v %s", err, out)
	}

	// --add registers them unapproved, pinned with the key they showed.
	out := b.MustAdmin("neighbor", "discover", "127.0.0.2/32", "--port", p, "--add")
	if !strings.Contains(out, "presents host key SHA256:") || !strings.Contains(out, "unapproved") {
		t.Errorf("discover --add: %s", out)
	}
	servers := jsonList(t, b, "server", "list")
	if len(servers) != 1 || servers[0]["role"] != "neighbor" || servers[0]["approved"] != false ||
		fmt.Sprint(servers[0]["port"]) != srvA.Port() {
		t.Fatalf("servers after --add: %v", servers)
	}
	b.MustAdmin("server", "approve", servers[0]["name"].(string))
	if s := jsonList(t, b, "server", "list"); s[0]["approved"] != true {
		t.Errorf("approve: %v", s)
	}

	// Bounds: never more than a /16 without --force; bad input refused.
	wantError(t, a.Admin("", "neighbor", "discover", "10.0.0.0/8"), "needs --force")
	wantError(t, a.Admin("", "neighbor", "discover", "not-a-cidr"), "invalid CIDR")
}
