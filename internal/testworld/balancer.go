package testworld

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Balancer is HAProxy in front of a cluster's nodes, run in the
// foreground as the test's child with the configuration shipped in
// deploy/haproxy/haproxy.cfg, its addresses replaced by the test's.
type Balancer struct {
	t          testing.TB
	w          *World // where its clients keep their clones
	cmd        *exec.Cmd
	exited     chan struct{}
	Addr       string // where clients connect
	Config     string // the configuration file it runs
	socket     string // its admin socket
	knownHosts string
}

var (
	bindLine   = regexp.MustCompile(`(?m)^(\s*)bind \S+:2222\s*$`)
	serverLine = regexp.MustCompile(`(?m)^\s*server node-\d+ \S+\s*\n`)
	globalLine = regexp.MustCompile(`(?m)^global\s*\n`)
)

// BalancerConfig is the shipped configuration with the balancer listening
// on addr and one server line per node (named as the node), connecting
// from BalancerSource, and an admin socket at socket.
func BalancerConfig(shipped, addr, socket string, nodes []*Node) (string, error) {
	if !bindLine.MatchString(shipped) || !serverLine.MatchString(shipped) || !globalLine.MatchString(shipped) {
		return "", fmt.Errorf("haproxy.cfg: no global section, bind *:2222 or server node-N lines to replace")
	}
	cfg := bindLine.ReplaceAllString(shipped, "${1}bind "+addr)
	cfg = globalLine.ReplaceAllString(cfg, "global\n\tstats socket "+socket+" mode 600 level admin\n")
	var servers strings.Builder
	for _, nd := range nodes {
		fmt.Fprintf(&servers, "\tserver %s %s source %s\n", nd.Name, nd.Addr, BalancerSource)
	}
	first := true
	cfg = serverLine.ReplaceAllStringFunc(cfg, func(string) string {
		if first {
			first = false
			return servers.String()
		}
		return ""
	})
	return cfg, nil
}

// ShippedBalancerConfig is deploy/haproxy/haproxy.cfg of this module.
func ShippedBalancerConfig() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "haproxy", "haproxy.cfg"))
	return string(b), err
}

func startBalancer(t testing.TB, root string, nodes []*Node) *Balancer {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy"
	}
	shipped, err := ShippedBalancerConfig()
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{t: t, w: nodes[0].World, exited: make(chan struct{}),
		Addr:   fmt.Sprintf("127.0.0.1:%d", FreePort(t, "127.0.0.1")),
		Config: filepath.Join(root, "haproxy.cfg"), socket: filepath.Join(root, "haproxy.sock")}
	cfg, err := BalancerConfig(shipped, b.Addr, b.socket, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := b.Config + ".log"
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(haproxy, "-db", "-f", b.Config)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	go func() { b.cmd.Wait(); log.Close(); close(b.exited) }()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("haproxy log:\n%s", out)
		}
	})
	b.WaitUp(len(nodes))
	return b
}

// Stop ends HAProxy.
func (b *Balancer) Stop() {
	select {
	case <-b.exited:
		return
	default:
	}
	b.cmd.Process.Kill()
	<-b.exited
}

// Command runs one command on HAProxy's admin socket and returns the answer.
func (b *Balancer) Command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", b.socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(c)
	return string(out), err
}

// Up is how many nodes HAProxy's health checks see up.
func (b *Balancer) Up() int {
	out, err := b.Command("show stat")
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, ",")
		if len(f) > 17 && f[0] == "cpm_nodes" && strings.HasPrefix(f[1], "node-") && f[17] == "UP" {
			n++
		}
	}
	return n
}

// WaitUp waits up to 30 s until HAProxy sees n nodes up.
func (b *Balancer) WaitUp(n int) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.Up() < n {
		select {
		case <-b.exited:
			b.t.Fatal("haproxy exited")
		default:
		}
		if time.Now().After(deadline) {
			out, _ := b.Command("show stat")
			b.t.Fatalf("haproxy sees %d of %d nodes up:\n%s", b.Up(), n, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SetNode takes node name out of the balancer's rotation (up false: state
// maint) or puts it back.
func (b *Balancer) SetNode(name string, up bool) error {
	state := "maint"
	if up {
		state = "ready"
	}
	out, err := b.Command("set server cpm_nodes/" + name + " state " + state)
	if err == nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("haproxy: %s", strings.TrimSpace(out))
	}
	return err
}

// Client is a client of the cluster through the balancer for key, the
// cluster's host key pinned.
func (b *Balancer) Client(key Key) *Client {
	return &Client{w: b.w, Key: key, user: "git", addr: b.Addr, knownHosts: b.knownHosts}
}

// URL is the ssh clone URL of ORG/REPO through the balancer.
func (b *Balancer) URL(path string) string {
	return "ssh://git@" + b.Addr + "/" + path + ".git"
}
