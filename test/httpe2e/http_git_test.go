package httpe2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHTTPGitAnonymous: over HTTPS without credentials a public
// repository clones and fetches with protocol v2 and v0, shallow and
// partial; a private repository answers exactly like a missing one; a
// push asks for credentials; dumb HTTP and other services are not served.
func TestHTTPGitAnonymous(t *testing.T) {
	h := newHTTPWorld(t, true)
	url := h.url("acme/pub.git")

	t.Run("clone v2 and fetch", func(t *testing.T) {
		dir := filepath.Join(h.w.Root, "v2")
		r := h.git("", []string{"GIT_TRACE_PACKET=1"}, "clone", "-q", url, dir)
		if r.Code != 0 || !strings.Contains(r.Stderr, "git< version 2") {
			t.Fatalf("clone over v2: exit %d\n%s", r.Code, tail(r.Stderr))
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != "second of acme/pub\n" {
			t.Errorf("README: %q", b)
		}
		h.mustGit(dir, nil, "fetch", "-q", "origin")
	})
	t.Run("clone v0", func(t *testing.T) {
		dir := filepath.Join(h.w.Root, "v0")
		r := h.git("", []string{"GIT_TRACE_PACKET=1"}, "-c", "protocol.version=0", "clone", "-q", url, dir)
		if r.Code != 0 || strings.Contains(r.Stderr, "git< version 2") {
			t.Fatalf("clone over v0: exit %d\n%s", r.Code, tail(r.Stderr))
		}
		h.mustGit(dir, nil, "-c", "protocol.version=0", "fetch", "-q", "origin")
	})
	t.Run("cpm's own refs hidden", func(t *testing.T) {
		repo := h.w.RepoDir("acme", "pub")
		if out, err := exec.Command("git", "--git-dir", repo, "update-ref", "refs/cpm/diverged/1/refs/heads/main", "main").CombinedOutput(); err != nil {
			t.Fatalf("update-ref: %v %s", err, out)
		}
		for _, v := range []string{"0", "2"} {
			refs := h.mustGit("", nil, "-c", "protocol.version="+v, "ls-remote", url)
			if strings.Contains(refs, "refs/cpm/") || !strings.Contains(refs, "refs/heads/main") {
				t.Errorf("ls-remote over v%s:\n%s", v, refs)
			}
		}
	})
	t.Run("shallow", func(t *testing.T) {
		dir := filepath.Join(h.w.Root, "shallow")
		h.mustGit("", nil, "clone", "-q", "--depth", "1", url, dir)
		if n := h.mustGit(dir, nil, "rev-list", "--count", "HEAD"); n != "1" {
			t.Errorf("a --depth 1 clone has %s commits", n)
		}
	})
	t.Run("partial", func(t *testing.T) {
		dir := filepath.Join(h.w.Root, "partial")
		h.mustGit("", nil, "clone", "-q", "--filter=blob:none", "--no-checkout", url, dir)
		missing := h.mustGit(dir, nil, "rev-list", "--objects", "--all", "--missing=print")
		if !strings.Contains(missing, "?") {
			t.Errorf("a blob:none clone has every blob:\n%s", missing)
		}
		h.mustGit(dir, nil, "checkout", "-q", "main") // fetches the blobs it needs
	})
	t.Run("private answers as missing", func(t *testing.T) {
		for _, path := range []string{"/info/refs?service=git-upload-pack", "/info/refs?service=git-receive-pack"} {
			priv, privBody := h.get(t, "acme/priv.git"+path)
			miss, missBody := h.get(t, "acme/nope.git"+path)
			if priv.StatusCode != http.StatusUnauthorized || priv.StatusCode != miss.StatusCode ||
				strings.ReplaceAll(privBody, "priv", "X") != strings.ReplaceAll(missBody, "nope", "X") ||
				priv.Header.Get("WWW-Authenticate") != `Basic realm="cpm"` || priv.Header.Get("WWW-Authenticate") != miss.Header.Get("WWW-Authenticate") {
				t.Errorf("%s: private %d %q %v, missing %d %q %v", path, priv.StatusCode, privBody, priv.Header,
					miss.StatusCode, missBody, miss.Header)
			}
		}
		r := h.git("", nil, "clone", "-q", h.url("acme/priv.git"), filepath.Join(h.w.Root, "priv"))
		if r.Code == 0 {
			t.Errorf("anonymous clone of a private repository succeeded")
		}
	})
	t.Run("push needs a token", func(t *testing.T) {
		resp, body := h.get(t, "acme/pub.git/info/refs?service=git-receive-pack")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="cpm"` {
			t.Errorf("anonymous push: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		dir := filepath.Join(h.w.Root, "v2")
		os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644)
		h.mustGit(dir, nil, "add", "new")
		h.mustGit(dir, nil, "commit", "-q", "-m", "anonymous")
		if r := h.git(dir, nil, "push", "origin", "main"); r.Code == 0 {
			t.Errorf("anonymous push succeeded:\n%s", r.Stderr)
		}
	})
	t.Run("certificate reloaded on SIGHUP", func(t *testing.T) {
		before := h.serverCert(t)
		writeCert(t, h.ca, filepath.Join(h.w.Root, "tls-key.pem"), "127.0.0.1")
		h.srv.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for h.serverCert(t).Equal(before) {
			if time.Now().After(deadline) {
				t.Fatal("the server presents the old certificate 10 s after SIGHUP")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if h.srv.Exited() {
			t.Fatal("SIGHUP ended the server")
		}
		h.mustGit(filepath.Join(h.w.Root, "v2"), nil, "fetch", "-q", "origin")
	})
	t.Run("no dumb HTTP, no other services", func(t *testing.T) {
		for path, want := range map[string]int{
			"acme/pub.git/HEAD":                                  http.StatusNotFound,
			"acme/pub.git/info/refs":                             http.StatusNotFound,
			"acme/pub.git/objects/info/packs":                    http.StatusNotFound,
			"acme/pub.git/config":                                http.StatusNotFound,
			"acme/pub.git/info/refs?service=git-upload-archive":  http.StatusForbidden,
			"acme/pub.git/info/refs?service=foo":                 http.StatusForbidden,
			"acme/pub.git/info/refs?service=git-upload-pack":     http.StatusOK,
			"acme/pub.git/info/refs?service=git-upload-pack&x=1": http.StatusOK,
		} {
			if resp, body := h.get(t, path); resp.StatusCode != want {
				t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, want)
			}
		}
	})
}

// get fetches path under the server, without credentials.
func (h *httpWorld) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	return h.do(t, req)
}

// do sends req and reads the answer whole.
func (h *httpWorld) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// serverCert is the certificate the server presents now.
func (h *httpWorld) serverCert(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", h.srv.HTTPAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}
