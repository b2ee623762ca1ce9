package httpe2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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

// httpWorld is one cpm-shell serve with HTTP(S) on, an owner alice with
// a key, and the repositories acme/pub (public) and acme/priv, each with
// one commit pushed over ssh.
type httpWorld struct {
	t     *testing.T
	w     *testworld.World
	srv   *testworld.Server
	alice *testworld.Client
	base  string // http(s)://127.0.0.1:PORT
	ca    string // the test CA's certificate (https only)
	home  string // HOME of the HTTP clients
}

// newHTTPWorld starts the server with --http-listen (and a certificate
// the test makes when tls), and extra flags.
func newHTTPWorld(t *testing.T, tls bool, extra ...string) *httpWorld {
	w := testworld.New(t, bin)
	h := &httpWorld{t: t, w: w, home: filepath.Join(w.Root, "home")}
	os.MkdirAll(h.home, 0o700)
	listen := "127.0.0.1:0"
	for i, a := range extra {
		if a == "--http-listen" && i+1 < len(extra) {
			listen = extra[i+1]
		}
	}
	args := append([]string{"--http-listen", listen}, extra...)
	if tls {
		h.ca = filepath.Join(w.Root, "tls-cert.pem")
		key := filepath.Join(w.Root, "tls-key.pem")
		host, _, _ := net.SplitHostPort(listen)
		writeCert(t, h.ca, key, host)
		args = append(args, "--tls-cert", h.ca, "--tls-key", key)
	}
	key := w.NewKey("alice")
	w.MustAdmin("user", "add", "alice", "--key", key.PubPath)
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	w.MustAdmin("repo", "create", "acme/pub", "--public")
	w.MustAdmin("repo", "create", "acme/priv")
	h.srv = w.StartServer(args...)
	if h.srv.HTTPAddr == "" {
		t.Fatalf("no http address logged:\n%s", h.srv.Log())
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	h.base = scheme + "://" + h.srv.HTTPAddr
	h.alice = h.srv.Client(key)
	for _, repo := range []string{"acme/pub", "acme/priv"} {
		h.seed(repo)
	}
	return h
}

// seed pushes one commit with README to repo over ssh.
func (h *httpWorld) seed(repo string) {
	dir := filepath.Join(h.w.Root, "seed-"+strings.ReplaceAll(repo, "/", "-"))
	h.alice.MustGit("", "init", "-q", "-b", "main", dir)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello from "+repo+"\n"), 0o644)
	h.alice.MustGit(dir, "add", "README")
	h.alice.MustGit(dir, "commit", "-q", "-m", "first")
	os.WriteFile(filepath.Join(dir, "README"), []byte("second of "+repo+"\n"), 0o644)
	h.alice.MustGit(dir, "commit", "-q", "-am", "second")
	h.alice.MustGit(dir, "push", "-q", h.alice.URL(repo), "main")
}

// url is the HTTP(S) URL of path under the server.
func (h *httpWorld) url(path string) string { return h.base + "/" + path }

// git runs git as an HTTP client in dir ("" for the world's root), with
// env added (a credential helper, say).
func (h *httpWorld) git(dir string, env []string, args ...string) testworld.Result {
	h.t.Helper()
	if dir == "" {
		dir = h.w.Root
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(testworld.Env(), "HOME="+h.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_SSL_CAINFO="+h.ca), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("git: %v", err)
	}
	return testworld.Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// mustGit runs git and fails the test unless it succeeds.
func (h *httpWorld) mustGit(dir string, env []string, args ...string) string {
	h.t.Helper()
	r := h.git(dir, env, args...)
	if r.Code != 0 {
		h.t.Fatalf("git %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// withToken is the environment that makes git answer a 401 with token
// as the password, through a credential helper.
func withToken(token string) []string {
	helper := fmt.Sprintf("!f() { test \"$1\" = get && echo username=any && echo password=%s; }; f", token)
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=credential.helper", "GIT_CONFIG_VALUE_0=" + helper}
}

// client is an HTTP client that trusts the test's certificate.
func (h *httpWorld) client() *http.Client {
	pool := x509.NewCertPool()
	if h.ca != "" {
		pem, err := os.ReadFile(h.ca)
		if err != nil {
			h.t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// raw sends req as it is over a new connection to the plain HTTP
// listener and returns the status code of the answer (0 when the server
// closed the connection without one).
func (h *httpWorld) raw(req string) int {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", h.srv.HTTPAddr, 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// writeCert writes a self-signed certificate for ip and its key.
func writeCert(t *testing.T, certPath, keyPath, ip string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "cpm test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP(ip)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}
