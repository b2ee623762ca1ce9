package httpe2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// createToken runs cpm-admin and returns the token, the last line of
// its output.
func (h *httpWorld) createToken(args ...string) string {
	h.t.Helper()
	out := strings.Split(strings.TrimSpace(h.w.MustAdmin(args...)), "\n")
	return out[len(out)-1]
}

// TestHTTPGitTokens: git clones, fetches and pushes a private repository
// over HTTPS with a token from a credential helper (v2 and v0), the push
// runs cpm's hooks (audit row with "transport": "http") and nothing of
// the request reaches git's environment; a read-only token's push is
// 403 with the ssh wording; a scoped token outside its scope gets 404
// like a missing repository (never 401: git would erase a valid token
// from its credential helper); a revoked token and a wrong one get 401.
func TestHTTPGitTokens(t *testing.T) {
	h := newHTTPWorld(t, true)
	full := h.createToken("token", "create", "alice", "--name", "laptop")
	readOnly := h.createToken("token", "create", "alice", "--name", "ci", "--read-only")
	scoped := h.createToken("token", "create", "alice", "--name", "pub-only", "--repo", "acme/pub")
	url := h.url("acme/priv.git")
	dir := filepath.Join(h.w.Root, "priv")

	t.Run("clone and fetch, v2 and v0", func(t *testing.T) {
		h.mustGit("", withToken(full), "clone", "-q", url, dir)
		if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != "second of acme/priv\n" {
			t.Errorf("README: %q", b)
		}
		h.mustGit(dir, withToken(full), "-c", "protocol.version=0", "fetch", "-q", "origin")
		h.mustGit("", withToken(readOnly), "-c", "protocol.version=0", "clone", "-q", url, filepath.Join(h.w.Root, "priv-v0"))
	})
	t.Run("push runs the hooks, audited as http", func(t *testing.T) {
		hooks := filepath.Join(h.w.RepoDir("acme", "priv"), "hooks", "pre-receive.d")
		os.MkdirAll(hooks, 0o755)
		envFile := filepath.Join(h.w.Root, "hook-env")
		os.WriteFile(filepath.Join(hooks, "dump"), []byte("#!/bin/sh\nenv > '"+envFile+"'\n"), 0o755)
		os.WriteFile(filepath.Join(dir, "new"), []byte("x\n"), 0o644)
		h.mustGit(dir, nil, "add", "new")
		h.mustGit(dir, nil, "commit", "-q", "-m", "over http")
		h.mustGit(dir, withToken(full), "-c", "http.extraHeader=Proxy: http://127.0.0.1:1", "-c", "http.extraHeader=X-Evil: EVILVALUE",
			"push", "-q", "origin", "main")
		env, err := os.ReadFile(envFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"HTTP_", "EVILVALUE", "127.0.0.1:1", "REQUEST_METHOD", "QUERY_STRING", full} {
			if strings.Contains(string(env), bad) {
				t.Errorf("the hook's environment has %q:\n%s", bad, env)
			}
		}
		if !strings.Contains(string(env), "CPM_TRANSPORT=http\n") || !strings.Contains(string(env), "CPM_USER=alice\n") {
			t.Errorf("the hook's environment:\n%s", env)
		}
		audit := h.w.MustAdmin("audit", "--json", "--limit", "1")
		if !strings.Contains(audit, `"transport": "http"`) || !strings.Contains(audit, `"push"`) {
			t.Errorf("audit row of the push:\n%s", audit)
		}
	})
	t.Run("a read-only token's push", func(t *testing.T) {
		resp, body := h.getAs(t, "acme/priv.git/info/refs?service=git-receive-pack", "any", readOnly)
		if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(body, "cpm: ") || !strings.Contains(body, "read-only") {
			t.Errorf("read-only token's push: %d %q", resp.StatusCode, body)
		}
		r := h.git(dir, withToken(readOnly), "push", "origin", "main:refs/heads/other")
		if r.Code == 0 || !strings.Contains(r.Stderr, "remote: cpm: ") || !strings.Contains(r.Stderr, "read-only") {
			t.Errorf("read-only token's git push: exit %d\n%s", r.Code, r.Stderr)
		}
	})
	t.Run("push to create", func(t *testing.T) {
		// A push's advertisement (GET, HEAD: safe methods a crawler or a
		// prefetch sends) is an empty repository's, and creates nothing.
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, h.url("acme/fresh.git/info/refs?service=git-receive-pack"), nil)
			req.SetBasicAuth("any", full)
			resp, body := h.do(t, req)
			want := "001f# service=git-receive-pack\n0000"
			if resp.StatusCode != http.StatusOK || method == http.MethodGet &&
				(!strings.HasPrefix(body, want) || !strings.Contains(body, "0000000000000000000000000000000000000000 capabilities^{}\x00")) {
				t.Errorf("%s of a new repository's push advertisement: %d %q", method, resp.StatusCode, body)
			}
		}
		if _, err := os.Stat(h.w.RepoDir("acme", "fresh")); err == nil || strings.Contains(h.w.MustAdmin("repo", "list"), "acme/fresh") {
			t.Fatalf("a GET of info/refs?service=git-receive-pack created acme/fresh (%v)", err)
		}
		h.mustGit(dir, withToken(full), "push", "-q", h.url("acme/fresh.git"), "main")
		if _, err := os.Stat(h.w.RepoDir("acme", "fresh")); err != nil {
			t.Errorf("an owner's push over HTTP did not create acme/fresh: %v", err)
		}
		if r := h.git(dir, withToken(scoped), "push", "-q", h.url("acme/fresh2.git"), "main"); r.Code == 0 {
			t.Errorf("a scoped token's push created a repository")
		}
	})
	t.Run("out of scope, wrong and revoked tokens", func(t *testing.T) {
		missResp, missBody := h.getAs(t, "acme/nope.git/info/refs?service=git-upload-pack", "any", scoped)
		resp, body := h.getAs(t, "acme/priv.git/info/refs?service=git-upload-pack", "any", scoped)
		if resp.StatusCode != http.StatusNotFound || missResp.StatusCode != resp.StatusCode ||
			resp.Header.Get("WWW-Authenticate") != "" || missResp.Header.Get("WWW-Authenticate") != "" ||
			strings.ReplaceAll(body, "priv", "X") != strings.ReplaceAll(missBody, "nope", "X") {
			t.Errorf("scoped token outside its scope: %d %q; missing: %d %q", resp.StatusCode, body, missResp.StatusCode, missBody)
		}
		if resp, _ := h.getAs(t, "acme/pub.git/info/refs?service=git-receive-pack", "", scoped); resp.StatusCode != http.StatusOK {
			t.Errorf("scoped token inside its scope, as Bearer: %d", resp.StatusCode)
		}
		if resp, _ := h.getAs(t, "acme/priv.git/info/refs?service=git-upload-pack", "", full); resp.StatusCode != http.StatusOK {
			t.Errorf("Bearer token: %d", resp.StatusCode)
		}
		if resp, _ := h.getAs(t, "acme/pub.git/info/refs?service=git-upload-pack", "any", "cpm_"+strings.Repeat("A", 32)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an unknown token: %d", resp.StatusCode)
		}
		h.w.MustAdmin("token", "revoke", tokenID(t, h, "ci"))
		if resp, _ := h.getAs(t, "acme/pub.git/info/refs?service=git-upload-pack", "any", readOnly); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a revoked token: %d", resp.StatusCode)
		}
	})

	t.Run("shutdown lets a running push finish", func(t *testing.T) {
		hooks := filepath.Join(h.w.RepoDir("acme", "priv"), "hooks", "pre-receive.d")
		marker := filepath.Join(h.w.Root, "pushing")
		os.WriteFile(filepath.Join(hooks, "dump"), []byte("#!/bin/sh\ntouch '"+marker+"'\nsleep 3\n"), 0o755)
		h.mustGit(dir, nil, "commit", "-q", "--allow-empty", "-m", "during shutdown")
		done := make(chan testworld.Result, 1)
		go func() { done <- h.git(dir, withToken(full), "push", "-q", "origin", "main") }()
		waitFile(t, marker) // the push's POST is in its pre-receive hook
		h.srv.Signal(syscall.SIGTERM)
		// A reload during the grace (systemctl reload racing a stop)
		// must not end the server and the push with it.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(h.srv.Log(), "shutting down"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no shutdown after SIGTERM:\n%s", h.srv.Log())
			}
		}
		time.Sleep(200 * time.Millisecond) // nothing to wait for: the old code stopped catching SIGHUP by now
		h.srv.Signal(syscall.SIGHUP)
		if r := <-done; r.Code != 0 {
			t.Errorf("the push under way at SIGTERM: exit %d\n%s", r.Code, r.Stderr)
		}
		if exited, _ := h.srv.Wait(30 * time.Second); !exited {
			t.Error("the server did not exit after the push")
		}
		got, _ := exec.Command("git", "--git-dir", h.w.RepoDir("acme", "priv"), "rev-parse", "main").Output()
		if want := h.mustGit(dir, nil, "rev-parse", "HEAD"); strings.TrimSpace(string(got)) != want {
			t.Errorf("main on the server %q, want %s", got, want)
		}
	})
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("no %s after 20 s", path)
}

// getAs fetches path with a token: Basic with user, or Bearer when user
// is "".
func (h *httpWorld) getAs(t *testing.T, path, user, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	if user != "" {
		req.SetBasicAuth(user, token)
	} else {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return h.do(t, req)
}

// tokenID is the id of alice's token called name.
func tokenID(t *testing.T, h *httpWorld, name string) string {
	t.Helper()
	for _, line := range strings.Split(h.w.MustAdmin("token", "list", "alice"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == name {
			return f[0]
		}
	}
	t.Fatalf("no token %s:\n%s", name, h.w.MustAdmin("token", "list", "alice"))
	return ""
}
