package httpe2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestHTTPBehindHAProxy: plain HTTP behind a real HAProxy in HTTP mode
// (option forwardfor), the proxy in proxy_allow: git clones and pushes
// through it, and the client's address in the log is the one the proxy
// forwarded, not the proxy's.
func TestHTTPBehindHAProxy(t *testing.T) {
	h := newHTTPWorld(t, false, "--proxy-allow", "127.0.0.1/32")
	proxy := startHTTPProxy(t, h)
	token := h.createToken("token", "create", "alice", "--name", "ci")

	dir := filepath.Join(h.w.Root, "through-proxy")
	h.mustGit("", nil, "clone", "-q", "http://"+proxy+"/acme/pub.git", dir)
	h.mustGit(dir, nil, "commit", "-q", "--allow-empty", "-m", "through haproxy")
	h.mustGit(dir, withToken(token), "push", "-q", "origin", "main")

	// A client at 127.0.0.5: the proxy forwards its address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
	// It sends a Forwarded header of its own, and a forged
	// X-Forwarded-For that HAProxy appends to: neither names it.
	req, _ := http.NewRequest("GET", "http://"+proxy+"/acme/pub.git/info/refs?service=git-upload-pack", nil)
	req.Header.Set("Forwarded", "for=127.0.0.9")
	req.Header.Set("X-Forwarded-For", "127.0.0.8")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("through the proxy: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.srv.Log(), `"remote":"127.0.0.5"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the client behind the proxy is not in the log:\n%s", h.srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, forged := range []string{`"remote":"127.0.0.9"`, `"remote":"127.0.0.8"`} {
		if strings.Contains(h.srv.Log(), forged) {
			t.Errorf("a client's own forwarded header named it (%s):\n%s", forged, h.srv.Log())
		}
	}
}

// startHTTPProxy runs HAProxy in HTTP mode in front of the server's HTTP
// listener and returns its address; it stops at the test's cleanup.
func startHTTPProxy(t *testing.T, h *httpWorld) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testworld.FreePort(t, "127.0.0.1"))
	cfg := fmt.Sprintf(`global
	maxconn 100
defaults
	mode http
	option forwardfor
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend git
	bind %s
	default_backend cpm
backend cpm
	server cpm %s
`, addr, h.srv.HTTPAddr)
	path := filepath.Join(h.w.Root, "haproxy-http.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy" // root's PATH has it, a user's may not
	}
	cmd := exec.Command(haproxy, "-db", "-f", path)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", out)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s:\n%s", addr, out)
		}
	}
}
