package httpe2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPHostile: what a hostile client sends the HTTP listener is
// refused with a status, never served from outside the repository, and
// costs the server bounded time and memory; nothing secret reaches the
// log, and forwarded-for headers count only from proxy_allow.
func TestHTTPHostile(t *testing.T) {
	h := newHTTPWorld(t, false, "--handshake-timeout", "2s", "--proxy-allow", "127.0.0.2/32")
	get := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + strings.Join(headers, "") + "\r\n"
	}

	t.Run("paths", func(t *testing.T) {
		const refs = "/info/refs?service=git-upload-pack"
		if code := h.raw(get("/acme/pub.git" + refs)); code != http.StatusOK {
			t.Fatalf("the good path: %d", code)
		}
		for _, p := range []string{
			"/acme/../acme/pub.git" + refs,
			"/acme/pub.git/../../../etc/passwd",
			"/acme/%2e%2e/acme/pub.git" + refs,
			"/acme/pub%2egit" + refs,
			"/acme%2Fpub.git" + refs,
			"/acme/pub.git%2Finfo%2Frefs?service=git-upload-pack",
			"//acme/pub.git" + refs,
			"/acme//pub.git" + refs,
			"/acme/pub.git//info/refs?service=git-upload-pack",
			"/acme\\pub.git" + refs,
			"/acme/pub.git%00" + refs,
			"/acme/pub.git/./info/refs?service=git-upload-pack",
			"/./acme/pub.git" + refs,
			"/acme/.git" + refs,
			"/acme/" + strings.Repeat("a", 5000) + ".git" + refs,
			"/acme/pub.git/objects/info/packs",
			"/acme/pub.git/HEAD",
			"/acme/pub.git/info/refs",
			"/acme/pub.git/git-upload-archive",
			"/acme",
			"/",
		} {
			if code := h.raw(get(p)); code == http.StatusOK || code == 0 || code >= 500 {
				t.Errorf("GET %.80s: %d", p, code)
			}
		}
	})
	t.Run("services", func(t *testing.T) {
		for _, s := range []string{"git-upload-archive", "foo", "git-upload-pack%00", "upload-pack"} {
			if code := h.raw(get("/acme/pub.git/info/refs?service=" + s)); code != http.StatusForbidden {
				t.Errorf("service %s: %d", s, code)
			}
		}
	})
	t.Run("huge headers", func(t *testing.T) {
		code := h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack", "X-Big: "+strings.Repeat("a", 64<<10)+"\r\n"))
		if code != http.StatusRequestHeaderFieldsTooLarge && code != http.StatusBadRequest {
			t.Errorf("64 KiB of headers: %d", code)
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", h.srv.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		line := get("/acme/pub.git/info/refs?service=git-upload-pack", strings.Repeat("X-Slow: 1\r\n", 100))
		for i := 0; i < len(line); i++ {
			if _, err := c.Write([]byte{line[i]}); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
			if time.Since(start) > 15*time.Second {
				t.Fatal("a client trickling its headers was not cut off within 15 s")
			}
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("cut off after %s, before the header timeout", d)
		}
	})
	t.Run("bodies", func(t *testing.T) {
		post := func(encoding string, body []byte) int {
			req, _ := http.NewRequest(http.MethodPost, h.url("acme/pub.git/git-upload-pack"), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
			if encoding != "" {
				req.Header.Set("Content-Encoding", encoding)
			}
			resp, err := h.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		// A gzip bomb: a want, then 33 MiB of have lines from a few
		// hundred kilobytes, which git would go on reading.
		head := strings.Fields(h.mustGit("", nil, "ls-remote", h.url("acme/pub.git"), "refs/heads/main"))[0]
		var bomb bytes.Buffer
		z, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
		z.Write([]byte("0032want " + head + "\n0000"))
		line := []byte("0032have 0000000000000000000000000000000000000001\n")
		for n := 0; n < 33<<20; n += len(line) {
			z.Write(line)
		}
		z.Close()
		if code := post("gzip", bomb.Bytes()); code != http.StatusRequestEntityTooLarge {
			t.Errorf("a 33 MiB negotiation: %d", code)
		}
		if code := post("br", []byte("0000")); code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Encoding br: %d", code)
		}
		if code := post("gzip", []byte("not gzip at all")); code != http.StatusBadRequest {
			t.Errorf("a body that is not gzip: %d", code)
		}
		// A body git cannot read is 400 with cpm's line; git's own
		// words go to the log only.
		req, _ := http.NewRequest(http.MethodPost, h.url("acme/pub.git/git-upload-pack"), strings.NewReader("garbage!"))
		req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		if resp, body := h.do(t, req); resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, "cpm: ") || strings.Contains(body, "fatal") {
			t.Errorf("a malformed upload-pack body: %d %q", resp.StatusCode, body)
		}
		// A push's body is never decoded: git does not gzip it, and a
		// gzip bomb would land in the quarantine.
		token := h.createToken("token", "create", "alice", "--name", "bomb")
		var push bytes.Buffer
		z = gzip.NewWriter(&push)
		z.Write([]byte("0000"))
		z.Close()
		req, _ = http.NewRequest(http.MethodPost, h.url("acme/pub.git/git-receive-pack"), &push)
		req.Header.Set("Content-Type", "application/x-git-receive-pack-request")
		req.Header.Set("Content-Encoding", "gzip")
		req.SetBasicAuth("any", token)
		if resp, body := h.do(t, req); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("a gzipped push: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("headers are not an environment", func(t *testing.T) {
		// Only a valid Git-Protocol reaches git: a bad one is dropped (v0
		// answers), and Proxy: or other CGI-ish headers change nothing.
		for _, tc := range []struct {
			header string
			v2     bool
		}{
			{"Git-Protocol: version=2\r\n", true},
			{"Git-Protocol: version=2 GIT_DIR=/etc\r\n", false},
			{"Git-Protocol: version=2;x\r\nProxy: http://127.0.0.1:1\r\nGIT-DIR: /etc\r\n", false},
		} {
			req, _ := http.NewRequest(http.MethodGet, h.url("acme/pub.git/info/refs?service=git-upload-pack"), nil)
			for _, l := range strings.Split(strings.TrimSpace(tc.header), "\r\n") {
				k, v, _ := strings.Cut(l, ": ")
				req.Header.Add(k, v)
			}
			resp, err := h.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "version 2") != tc.v2 ||
				strings.Contains(string(b), "# service=") == tc.v2 {
				t.Errorf("%q: %d %q", tc.header, resp.StatusCode, b)
			}
		}
	})
	t.Run("secrets and forwarded headers in the log", func(t *testing.T) {
		h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack&access_token=cpm_SECRETINQUERY"))
		h.raw(get("/acme/nope.git/info/refs?private_token=cpm_SECRETINQUERY2&service=git-upload-pack"))
		h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack", "Authorization: Basic eDpjcG1fU0VDUkVUSU5CQVNJQw==\r\n")) // x:cpm_SECRETINBASIC
		h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack", "Authorization: Bearer cpm_SECRETINBEARER\r\n"))
		h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack", "X-Forwarded-For: 203.0.113.77\r\n", "Forwarded: for=203.0.113.78\r\n"))
		time.Sleep(200 * time.Millisecond) // the log lines of the requests above
		log := h.srv.Log()
		for _, s := range []string{"SECRETINQUERY", "SECRETINBASIC", "SECRETINBEARER", "203.0.113.77", "203.0.113.78"} {
			if strings.Contains(log, s) {
				t.Errorf("the log has %s", s)
			}
		}
		if !strings.Contains(log, `"transport":"http"`) {
			t.Errorf("no http event in the log:\n%s", log)
		}
	})
	t.Run("forwarded-for from proxy_allow", func(t *testing.T) {
		// The same header from 127.0.0.2 (allowed) names the client; from
		// 127.0.0.1 (above) it was ignored.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", h.srv.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(get("/acme/nope.git/info/refs?service=git-upload-pack", "X-Forwarded-For: 203.0.113.90\r\n")))
		io.Copy(io.Discard, c)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(h.srv.Log(), `"remote":"203.0.113.90"`) {
			if time.Now().After(deadline) {
				t.Fatalf("a trusted proxy's X-Forwarded-For is not the logged client")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A hop it added that cannot be read is refused, not served as
		// the proxy's own (which would lock everyone behind it out).
		bad, err := d.Dial("tcp", h.srv.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		bad.Write([]byte(get("/acme/pub.git/info/refs?service=git-upload-pack", "X-Forwarded-For: 203.0.113.91, unknown\r\n")))
		if status, _ := io.ReadAll(bad); !strings.HasPrefix(string(status), "HTTP/1.1 400 ") {
			t.Errorf("an unreadable rightmost hop: %.40q", status)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		for _, auth := range []string{"Basic eDpjcG1fbm9wZQ==", "Bearer cpm_nope", "Bearer ", "Digest x", "Basic !!!"} {
			req, _ := http.NewRequest(http.MethodGet, h.url("acme/pub.git/info/refs?service=git-upload-pack"), nil)
			req.Header.Set("Authorization", auth)
			resp, err := h.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="cpm"` {
				t.Errorf("Authorization %q: %d %v", auth, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("failed authentications are rate limited", func(t *testing.T) {
		code := 0
		for i := 0; i < 20 && code != http.StatusTooManyRequests; i++ {
			code = h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack", "Authorization: Bearer cpm_guess\r\n"))
		}
		if code != http.StatusTooManyRequests {
			t.Fatalf("20 failed authentications in a row: the last %d", code)
		}
		// Anonymous reads from the same address still work.
		if code := h.raw(get("/acme/pub.git/info/refs?service=git-upload-pack")); code != http.StatusOK {
			t.Errorf("anonymous read after the limit: %d", code)
		}
		resp, err := http.Get("http://" + h.srv.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`cpm_auth_failures_total{transport="http"}`, `cpm_auth_rate_limited_total{transport="http"}`} {
			if !strings.Contains(string(m), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}
