package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// startHAProxy runs haproxy in front of the server: ssh with PROXY v2,
// git:// with v1, both connecting to cpm from 127.0.0.9, the one address
// cpm lets send headers. It returns the two front addresses.
func startHAProxy(t *testing.T, srv *testworld.Server) (sshFront, gitFront string) {
	t.Helper()
	haproxy := needCommand(t, "haproxy")
	sshFront = fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t, "127.0.0.1"))
	gitFront = fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t, "127.0.0.1"))
	cfg := fmt.Sprintf(`global
	maxconn 200
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend ssh
	bind %s
	default_backend cpm_ssh
backend cpm_ssh
	server cpm %s send-proxy-v2 source 127.0.0.9
frontend git
	bind %s
	default_backend cpm_git
backend cpm_git
	server cpm %s send-proxy source 127.0.0.9
`, sshFront, srv.SSHAddr, gitFront, srv.GitAddr)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := exec.Command(haproxy, "-db", "-f", path)
	log, _ := os.Create(path + ".log")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("haproxy log:\n%s", b)
		}
	})
	waitFor(t, 10*time.Second, "haproxy to listen", func() bool {
		c, err := net.Dial("tcp", sshFront)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return sshFront, gitFront
}

// TestProxyProtocol: cpm behind a real HAProxy sees each client's own
// address (logs, audit, a certificate's source-address), refuses
// connections that bypass the balancer when the header is required, and
// serves them plain when it is optional.
func TestProxyProtocol(t *testing.T) {
	c := newCompany(t)
	c.srv.Stop()
	c.srv = c.w.StartServer("--proxy-protocol", "required", "--proxy-allow", "127.0.0.9/32")
	sshFront, gitFront := startHAProxy(t, c.srv)
	writer := c.clients["writer"].Via(sshFront)
	from5 := []string{"-b", "127.0.0.5"}

	if r := writer.SSH(from5, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
		t.Fatalf("whoami through haproxy: %q %s", r.Stdout, r.Stderr)
	}
	if log := c.srv.Log(); !strings.Contains(log, `"remote":"127.0.0.5:`) || strings.Contains(log, `"remote":"127.0.0.9:`) {
		t.Errorf("the session log does not show the client's address:\n%s", log)
	}
	dir, r := writer.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone through haproxy: %s", r.Stderr)
	}
	writer.Commit(dir, "through the balancer")
	writer.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	if audit := c.w.MustAdmin("audit", "--json", "--limit", "1"); !strings.Contains(audit, `"remote_addr": "127.0.0.1:`) {
		t.Errorf("the push's audit row does not show the client's address:\n%s", audit)
	}
	if r := writer.Git("", "ls-remote", "git://"+gitFront+"/acme/pub.git"); r.Code != 0 || !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Errorf("git:// through haproxy: %d %s", r.Code, r.Stderr)
	}

	// A certificate's source-address is checked against the client.
	dirs := t.TempDir()
	ca := newCA(t, dirs, "ca")
	c.w.MustAdmin("ca", "add", "corp", ca+".pub")
	here := certKey(t, dirs, "here", ca, "here", "1", "-n", "writer", "-O", "source-address=127.0.0.5/32")
	balancer := certKey(t, dirs, "balancer", ca, "balancer", "2", "-n", "writer", "-O", "source-address=127.0.0.9/32")
	if r := c.srv.Client(here).Via(sshFront).SSH(from5, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
		t.Errorf("source-address of the client: %q %s", r.Stdout, r.Stderr)
	}
	if r := c.srv.Client(balancer).Via(sshFront).SSH(from5, "whoami"); r.Code == 0 {
		t.Error("source-address of the balancer let the client in")
	}

	// Around the balancer: refused, from an allowed address too (no header).
	for _, from := range []string{"127.0.0.1", "127.0.0.9"} {
		if r := c.srv.Client(c.keys["writer"]).SSH([]string{"-b", from}, "whoami"); r.Code == 0 {
			t.Errorf("direct connection from %s with the header required: %q", from, r.Stdout)
		}
	}
	if r := writer.Git("", "ls-remote", "git://"+c.srv.GitAddr+"/acme/pub.git"); r.Code == 0 {
		t.Error("direct git:// with the header required")
	}

	// Optional: the balancer's header is used, others are served plain.
	c.srv.Stop()
	c.srv = c.w.StartServer("--proxy-protocol", "optional", "--proxy-allow", "127.0.0.9/32", "--listen", c.srv.SSHAddr, "--git-listen", c.srv.GitAddr)
	if r := c.srv.Client(c.keys["writer"]).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
		t.Errorf("direct, header optional: %q %s", r.Stdout, r.Stderr)
	}
	if r := writer.SSH(from5, "whoami"); strings.TrimSpace(r.Stdout) != "writer" || !strings.Contains(c.srv.Log(), `"remote":"127.0.0.5:`) {
		t.Errorf("through haproxy, header optional: %q %s", r.Stdout, r.Stderr)
	}
}
