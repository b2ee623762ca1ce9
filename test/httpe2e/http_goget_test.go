package httpe2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPGoGet: `go get HOST/ORG/REPO/PKG` of a private module works
// with a token in .netrc (the real go command, GOPROXY=direct), and the
// go-get=1 answer of a repository one may not read is a missing one's.
// go wants HTTPS on port 443 and a module path without a port, so the
// server listens on a loopback address chosen at run time, port 443.
func TestHTTPGoGet(t *testing.T) {
	host := loopback443(t)
	h := newHTTPWorld(t, true, "--http-listen", host+":443")
	h.w.MustAdmin("repo", "create", "acme/mod")
	module := host + "/acme/mod"
	h.seedModule("acme/mod", module)
	token := h.createToken("token", "create", "alice", "--name", "go", "--read-only", "--repo", "acme/mod")

	t.Run("anonymous go-get=1 of a private module is a missing one's", func(t *testing.T) {
		priv, privBody := h.get(t, "acme/mod/sub?go-get=1")
		miss, missBody := h.get(t, "acme/nope/sub?go-get=1")
		if priv.StatusCode != http.StatusUnauthorized || miss.StatusCode != priv.StatusCode ||
			strings.ReplaceAll(privBody, "mod", "X") != strings.ReplaceAll(missBody, "nope", "X") {
			t.Errorf("private: %d %q; missing: %d %q", priv.StatusCode, privBody, miss.StatusCode, missBody)
		}
		resp, body := h.getAs(t, "acme/mod/sub?go-get=1", "x", token)
		want := fmt.Sprintf(`<meta name="go-import" content="%s git https://%s/acme/mod.git">`, module, host)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("with the token: %d %q, want %s", resp.StatusCode, body, want)
		}
	})
	t.Run("go get with .netrc", func(t *testing.T) {
		os.WriteFile(filepath.Join(h.home, ".netrc"), []byte("machine "+host+" login x password "+token+"\n"), 0o600)
		dir := filepath.Join(h.w.Root, "client")
		os.MkdirAll(dir, 0o755)
		h.goCmd(dir, "mod", "init", "example.com/client")
		h.goCmd(dir, "get", module+"/sub")
		if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !strings.Contains(string(b), module) {
			t.Errorf("go.mod after go get:\n%s", b)
		}
	})
}

// goCmd runs the go command as a developer with HOME's .netrc would.
func (h *httpWorld) goCmd(dir string, args ...string) {
	h.t.Helper()
	gopath := filepath.Join(h.w.Root, "gopath")
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+h.home, "GOPATH="+gopath, "GOMODCACHE="+filepath.Join(gopath, "mod"),
		"GOPROXY=direct", "GOSUMDB=off", "GONOSUMDB=*", "GONOSUMCHECK=1", "GOPRIVATE=*", "GOFLAGS=-mod=mod",
		"GOTOOLCHAIN=local", "SSL_CERT_FILE="+h.ca, "GIT_SSL_CAINFO="+h.ca, "GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1", "GOCACHE="+filepath.Join(h.w.Root, "gocache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// seedModule pushes a Go module named module, with a package sub, to repo.
func (h *httpWorld) seedModule(repo, module string) {
	dir := filepath.Join(h.w.Root, "seed-module")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+module+"\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "sub.go"), []byte("package sub\n\nconst Answer = 42\n"), 0o644)
	h.alice.MustGit("", "init", "-q", "-b", "main", dir)
	h.alice.MustGit(dir, "add", ".")
	h.alice.MustGit(dir, "commit", "-q", "-m", "module")
	h.alice.MustGit(dir, "push", "-q", h.alice.URL(repo), "main")
}

// loopback443 is a loopback address whose port 443 is free now.
func loopback443(t *testing.T) string {
	t.Helper()
	for range 20 {
		host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(250), 2+rand.IntN(250))
		ln, err := net.Listen("tcp", host+":443")
		if err == nil {
			ln.Close()
			return host
		}
	}
	t.Fatal("no loopback address with port 443 free (the test binds port 443: run it as root)")
	return ""
}
