package httpe2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var tokenLine = regexp.MustCompile(`(?m)^cpm_[0-9A-Za-z]{32}$`)

// token runs a cpm-admin command that makes a token and returns it (the
// last line of its output).
func (h *httpWorld) token(args ...string) string {
	h.t.Helper()
	out := strings.TrimSpace(h.w.MustAdmin(args...))
	secret := out[strings.LastIndex(out, "\n")+1:]
	if !tokenLine.MatchString(secret) {
		h.t.Fatalf("%v: no token on the last line of %q", args, out)
	}
	return secret
}

// lsRemote runs git ls-remote of repo with secret (none: "").
func (h *httpWorld) lsRemote(repo, secret string) (int, string) {
	h.t.Helper()
	var env []string
	if secret != "" {
		env = withToken(secret)
	}
	r := h.git("", env, "ls-remote", h.url(repo+".git"))
	return r.Code, r.Stdout + r.Stderr
}

// status is the HTTP status of GET path with an Authorization header.
func (h *httpWorld) status(t *testing.T, path, auth string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// push commits a file in a fresh clone of repo (made with secret) and
// pushes it with secret.
func (h *httpWorld) push(t *testing.T, repo, secret, name string) (int, string) {
	t.Helper()
	dir := filepath.Join(h.w.Root, "push-"+name)
	h.mustGit("", withToken(secret), "clone", "-q", h.url(repo+".git"), dir)
	os.WriteFile(filepath.Join(dir, name), []byte(name+"\n"), 0o644)
	h.mustGit(dir, nil, "add", name)
	h.mustGit(dir, nil, "commit", "-q", "-m", name)
	r := h.git(dir, withToken(secret), "push", "origin", "main")
	return r.Code, r.Stderr
}

// TestHTTPTokens: git over HTTPS with access tokens in a credential
// helper and as Bearer: a token clones and pushes as its user; a
// read-only token's push gets 403; a scoped token is refused outside its
// repository exactly as for a missing one; deploy tokens are bound to
// their repository and write only with --write; expired and revoked
// tokens are refused; last use is recorded; failed authentications are
// rate-limited per address and counted.
func TestHTTPTokens(t *testing.T) {
	h := newHTTPWorld(t, true)
	h.w.MustAdmin("repo", "create", "acme/other")
	h.seed("acme/other")
	h.w.MustAdmin("user", "add", "bob")
	h.w.MustAdmin("repo", "grant", "acme/priv", "bob", "read")
	full := h.token("token", "create", "alice", "--name", "laptop")

	t.Run("a token clones and pushes as its user", func(t *testing.T) {
		if code, out := h.push(t, "acme/priv", full, "full"); code != 0 {
			t.Fatalf("push with a token: %d\n%s", code, out)
		}
		audit := h.w.MustAdmin("audit", "--limit", "5")
		if !strings.Contains(audit, "push") || !strings.Contains(audit, "transport=http") || !strings.Contains(audit, "token=1") {
			t.Errorf("audit after an HTTP push:\n%s", audit)
		}
		if got := h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", "Bearer "+full); got != http.StatusOK {
			t.Errorf("Bearer: %d", got)
		}
	})
	t.Run("a token never does more than its user", func(t *testing.T) {
		bobs := h.token("token", "create", "bob", "--name", "b")
		if code, out := h.lsRemote("acme/priv", bobs); code != 0 {
			t.Fatalf("bob reads acme/priv: %s", out)
		}
		if code, out := h.push(t, "acme/priv", bobs, "bob"); code == 0 || !strings.Contains(out, "403") && !strings.Contains(out, "permission denied") {
			t.Errorf("bob (read) pushed with a token: %d\n%s", code, out)
		}
		if code, _ := h.lsRemote("acme/other", bobs); code == 0 {
			t.Error("bob's token reads a repository bob may not")
		}
	})
	t.Run("read-only", func(t *testing.T) {
		ro := h.token("token", "create", "alice", "--name", "ro", "--read-only")
		code, out := h.push(t, "acme/priv", ro, "ro")
		if code == 0 || !strings.Contains(out, "read-only") {
			t.Errorf("read-only token's push: %d\n%s", code, out)
		}
		if got := h.status(t, "acme/priv.git/info/refs?service=git-receive-pack", "Bearer "+ro); got != http.StatusForbidden {
			t.Errorf("read-only token's receive-pack: %d, want 403", got)
		}
	})
	t.Run("scoped", func(t *testing.T) {
		scoped := h.token("token", "create", "alice", "--name", "ci", "--repo", "acme/priv")
		if code, out := h.lsRemote("acme/priv", scoped); code != 0 {
			t.Fatalf("in scope: %s", out)
		}
		for _, path := range []string{"/info/refs?service=git-upload-pack", "/info/refs?service=git-receive-pack"} {
			out, miss := h.status(t, "acme/other.git"+path, "Bearer "+scoped), h.status(t, "acme/nope.git"+path, "Bearer "+scoped)
			if out != http.StatusNotFound || out != miss {
				t.Errorf("%s out of scope %d, missing %d; want 404 for both (a 401 makes git forget a valid token)", path, out, miss)
			}
		}
		if code, _ := h.lsRemote("acme/pub", scoped); code != 0 {
			t.Error("a scoped token cannot read a public repository anyone can read")
		}
	})
	t.Run("deploy tokens", func(t *testing.T) {
		ro := h.token("repo", "deploy-token", "create", "acme/priv", "--name", "argo")
		rw := h.token("repo", "deploy-token", "create", "acme/priv", "--name", "deployer", "--write")
		if code, out := h.push(t, "acme/priv", ro, "deploy-ro"); code == 0 {
			t.Errorf("a read-only deploy token pushed:\n%s", out)
		}
		if code, out := h.push(t, "acme/priv", rw, "deploy-rw"); code != 0 {
			t.Errorf("a --write deploy token's push: %d\n%s", code, out)
		}
		if code, _ := h.lsRemote("acme/other", rw); code == 0 {
			t.Error("a deploy token reads another repository")
		}
	})
	t.Run("revoked and expired", func(t *testing.T) {
		gone := h.token("token", "create", "alice", "--name", "gone")
		soon := h.token("token", "create", "alice", "--name", "soon", "--expires", "2s")
		for _, s := range []string{gone, soon} {
			if code, out := h.lsRemote("acme/priv", s); code != 0 {
				t.Fatalf("before: %s", out)
			}
		}
		var list []map[string]any
		json.Unmarshal([]byte(h.w.MustAdmin("token", "list", "alice", "--json")), &list)
		for _, tk := range list {
			if tk["name"] == "gone" {
				h.w.MustAdmin("token", "revoke", jsonInt(tk["id"]))
			}
		}
		if got := h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", "Bearer "+gone); got != http.StatusUnauthorized {
			t.Errorf("revoked token: %d", got)
		}
		deadline := time.Now().Add(10 * time.Second)
		for h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", "Bearer "+soon) == http.StatusOK && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if got := h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", "Bearer "+soon); got != http.StatusUnauthorized {
			t.Errorf("expired token: %d", got)
		}
	})
	t.Run("last use recorded", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var list []map[string]any
			json.Unmarshal([]byte(h.w.MustAdmin("token", "list", "alice", "--json")), &list)
			if len(list) > 0 && list[0]["name"] == "laptop" && list[0]["last_used"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("last_used never set: %v", list)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Last: it locks 127.0.0.1 out.
	t.Run("failed authentications are rate-limited", func(t *testing.T) {
		bad := "Bearer cpm_" + strings.Repeat("x", 32)
		// The revoked and expired tokens above failed already: some of
		// the ten allowed in a row are spent.
		var seq strings.Builder
		for range 15 {
			switch h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", bad) {
			case http.StatusUnauthorized:
				seq.WriteByte('u')
			case http.StatusTooManyRequests:
				seq.WriteByte('L')
			default:
				seq.WriteByte('?')
			}
		}
		if !regexp.MustCompile(`^u{1,10}L+$`).MatchString(seq.String()) {
			t.Errorf("15 bad tokens: %s, want 401 (u) at most ten times, then 429 (L)", seq.String())
		}
		// Only failures are limited: a good token from the same address
		// is served (others behind one NAT are not locked out by a typo).
		if got := h.status(t, "acme/priv.git/info/refs?service=git-upload-pack", "Bearer "+full); got != http.StatusOK {
			t.Errorf("a good token from a limited address: %d, want 200", got)
		}
		// Anonymous reads carry no credential and are not limited.
		if got := h.status(t, "acme/pub.git/info/refs?service=git-upload-pack", ""); got != http.StatusOK {
			t.Errorf("anonymous read from a limited address: %d", got)
		}
		resp, err := http.Get("http://" + h.srv.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := string(b)
		for _, name := range []string{`cpm_auth_failures_total{transport="http"} `, `cpm_auth_rate_limited_total{transport="http"} `} {
			i := strings.Index(m, name)
			if i < 0 || strings.HasPrefix(m[i+len(name):], "0\n") {
				t.Errorf("metrics lack a count of %s", name)
			}
		}
	})
}

func jsonInt(v any) string {
	f, _ := v.(float64)
	return strconv.FormatInt(int64(f), 10)
}
