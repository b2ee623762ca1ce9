package lfshttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/admin"
	"cpm/internal/datadir"
	"cpm/internal/gateway"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// world is a data directory with organisation acme (owner "owner",
// member "member" who reads), a private acme/web where "dev" may write,
// a public acme/pub,
// an outsider, and an HTTP server that serves the LFS API of any
// repository as the user the X-Test-User header names (the HTTP
// server's authentication is not this package's).
type world struct {
	srv  *httptest.Server
	repo string // acme/web's directory
	h    *Handler
	ids  map[string]access.Identity
}

func newWorld(t *testing.T, maxSize int64) world {
	t.Helper()
	ctx := context.Background()
	dir, err := datadir.New(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := admin.Init(ctx, dir, "", "/nonexistent/cpm-hook")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st, repos.RootOf(dir, "/nonexistent/cpm-hook"), store.Actor{Name: "test"})
	ch := access.New(st, nil)
	ids := map[string]access.Identity{}
	for _, u := range []string{"owner", "member", "dev", "outsider"} {
		if _, err := st.CreateUser(ctx, svc.Actor, u, false, &store.NewKey{Fingerprint: "SHA256:" + u, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 " + u}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []func() error{
		func() error { _, err := svc.CreateOrg(ctx, "acme", "owner"); return err },
		func() error { return svc.SetMember(ctx, "acme", "member", "member") },
		func() error { _, _, err := svc.CreateRepo(ctx, "acme/web", false, ""); return err },
		func() error { return svc.Grant(ctx, "acme/web", "dev", "write") },
		func() error { _, _, err := svc.CreateRepo(ctx, "acme/pub", true, ""); return err },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"owner", "member", "dev", "outsider"} {
		if ids[u], err = ch.Identify(ctx, "SHA256:"+u); err != nil {
			t.Fatal(err)
		}
	}
	gw := &gateway.Gateway{Access: ch, Store: st, Disk: svc.Disk, DataDir: dir, Log: zerolog.Nop(), LFSMaxObjectSize: maxSize}
	h := &Handler{Gateway: gw}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, rest, _ := strings.Cut(r.URL.Path, ".git/info/lfs")
		repo, err := names.ParseRepoPath(strings.TrimPrefix(path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h.ServeLFS(w, r, ids[r.Header.Get("X-Test-User")], "", r.RemoteAddr, repo, rest)
	}))
	t.Cleanup(srv.Close)
	h.BaseURL = srv.URL
	d, err := svc.Disk.Open("acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	return world{srv: srv, repo: d, h: h, ids: ids}
}

// call sends one request as user and returns the status and the body.
func (w world) call(t *testing.T, user, method, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", user)
	req.Header.Set("Content-Type", mediaType)
	req.Header.Set("Authorization", "Bearer test-"+user)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func jsonBody(t *testing.T, v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

func oidOf(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

// stored lists the files under the repository's lfs/ folder.
func (w world) stored(t *testing.T) []string {
	var files []string
	filepath.WalkDir(filepath.Join(w.repo, "lfs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, w.repo+"/"))
		}
		return nil
	})
	return files
}

const api = "/acme/web.git/info/lfs"
