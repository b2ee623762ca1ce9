package githttp

import (
	"context"
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
	"cpm/internal/gitservice"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// TestLocalExitIsNoRefusal: a local git that exits with a status a
// relayed refusal is carried by (100–102) before its first byte is a
// request git could not read (400), not a refusal (401/403/404/503):
// only a relayed request's status stands for the primary's refusal.
// git is a script here only because no real git request makes it exit
// so; everything else is the real gateway.
func TestLocalExitIsNoRefusal(t *testing.T) {
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
	if _, err := st.CreateUser(ctx, svc.Actor, "owner", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateOrg(ctx, "acme", "owner"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreateRepo(ctx, "acme/pub", true, ""); err != nil {
		t.Fatal(err)
	}
	h := &Handler{Gateway: &gateway.Gateway{Access: access.New(st, nil), Store: st, Disk: svc.Disk, DataDir: dir, Log: zerolog.Nop()},
		Log: zerolog.Nop()}
	bin := t.TempDir()
	for _, status := range []string{"100", "101", "102"} {
		if err := os.WriteFile(filepath.Join(bin, "git"), []byte("#!/bin/sh\nexit "+status+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin)
		r := httptest.NewRequest(http.MethodPost, "/acme/pub.git/git-upload-pack", strings.NewReader("0000"))
		r.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		w := httptest.NewRecorder()
		h.serveGit(w, r, "127.0.0.1:1", route{repo: names.RepoPath{Org: "acme", Repo: "pub"}, dotGit: true},
			gitservice.UploadPack, gitservice.RPC, access.Anonymous, "")
		if w.Code != http.StatusBadRequest {
			t.Errorf("git exit %s: HTTP %d %q, want 400", status, w.Code, w.Body.String())
		}
	}
}
