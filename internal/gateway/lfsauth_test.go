package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"cpm/internal/access"
	"cpm/internal/names"
	"cpm/internal/store"
)

// madeTokens records the tokens git-lfs-authenticate asks for.
type madeTokens struct{ made []string }

func (m *madeTokens) LFSToken(_ context.Context, id access.Identity, repo names.RepoPath, write bool, ttl time.Duration) (string, error) {
	tok := id.Name() + ":" + repo.String()
	if write {
		tok += ":write"
	}
	m.made = append(m.made, tok)
	return tok, nil
}

func TestLFSAuthenticate(t *testing.T) {
	w := newWorld(t)
	if status, _, stderr := w.run("member", "git-lfs-authenticate acme/web download"); status == 0 || !strings.Contains(stderr, "git-lfs-transfer") {
		t.Fatalf("without the HTTP server: %d %q", status, stderr)
	}
	tokens := &madeTokens{}
	w.gw.HTTPURL, w.gw.LFSTokens = "https://git.example.com/", tokens
	tests := []struct {
		name, user, command, token string // token "": refused
	}{
		{"reader's download", "member", "git-lfs-authenticate acme/web download", "member:acme/web"},
		{"writer's upload", "owner", "git-lfs-authenticate 'ACME/Web.git' upload", "owner:acme/web:write"},
		{"reader's upload is read-only", "member", "git-lfs-authenticate acme/web upload", "member:acme/web"},
		{"public download", "outsider", "git-lfs-authenticate acme/pub download", "outsider:acme/pub"},
		{"hidden", "outsider", "git-lfs-authenticate acme/web download", ""},
		{"hidden upload", "outsider", "git-lfs-authenticate acme/web upload", ""},
		{"upload creates for the owner", "owner", "git-lfs-authenticate acme/lfsnew upload", "owner:acme/lfsnew:write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tokens.made)
			status, stdout, stderr := w.run(tt.user, tt.command)
			if tt.token == "" {
				if status == 0 || !strings.Contains(stderr, "not found") || len(tokens.made) != before {
					t.Fatalf("%d %q %q, tokens %v", status, stdout, stderr, tokens.made)
				}
				return
			}
			var a lfsAuth
			if status != 0 || json.Unmarshal([]byte(stdout), &a) != nil {
				t.Fatalf("%d %q %q", status, stdout, stderr)
			}
			repo := strings.SplitN(tt.token, ":", 3)[1]
			if a.Href != "https://git.example.com/"+repo+".git/info/lfs" || a.Header["Authorization"] != "Bearer "+tt.token || a.ExpiresIn != 600 {
				t.Fatalf("%+v", a)
			}
		})
	}
}

// TestLFSTokenOnlyForLFS: a git-lfs-authenticate token (kind lfs) does
// not run git: not a fetch, not a push; a user's token does.
func TestLFSTokenOnlyForLFS(t *testing.T) {
	w := newWorld(t)
	owner := w.ids["owner"]
	for _, tc := range []struct {
		kind store.TokenKind
		ok   bool
	}{{store.TokenLFS, false}, {store.TokenUser, true}} {
		id := owner
		id.Token = &access.TokenInfo{ID: 1, Kind: tc.kind}
		w.ids["tok"] = id
		for _, cmd := range []string{"git-upload-pack acme/web", "git-receive-pack acme/web"} {
			status, _, stderr := w.run("tok", cmd)
			if tc.ok != (status == 0) || (!tc.ok && !strings.Contains(stderr, "Git LFS API only")) {
				t.Errorf("%s token, %s: %d %q", tc.kind, cmd, status, stderr)
			}
		}
	}
}

// TestLFSAuthenticateUnsafeURL: without a base URL a token may be handed
// for, git-lfs-authenticate refuses naming the setting and mints none.
func TestLFSAuthenticateUnsafeURL(t *testing.T) {
	w := newWorld(t)
	tokens := &madeTokens{}
	w.gw.LFSTokens, w.gw.HTTPURLUnsafe = tokens, errors.New("http_listen :8080 is a wildcard address; set http_url")
	if status, stdout, stderr := w.run("owner", "git-lfs-authenticate acme/web upload"); status == 0 || !strings.Contains(stderr, "http_url") || stdout != "" || len(tokens.made) != 0 {
		t.Fatalf("%d %q %q %v", status, stdout, stderr, tokens.made)
	}
}

// TestLFSAuthenticateLimit: each key has the store's allowance of
// tokens a minute (kept in the database, so it holds for a process per
// session); past it git-lfs-authenticate refuses, other users unaffected.
func TestLFSAuthenticateLimit(t *testing.T) {
	w := newWorld(t)
	w.gw.HTTPURL, w.gw.LFSTokens = "https://git.example.com", StoreTokens{Store: w.gw.Store}
	for i := range store.LFSMintsPerMinute + 1 {
		want := i < store.LFSMintsPerMinute
		status, _, stderr := w.run("owner", "git-lfs-authenticate acme/web download")
		if (status == 0) != want || (!want && !strings.Contains(stderr, "too many")) {
			t.Fatalf("mint %d: %d %q", i+1, status, stderr)
		}
	}
	if status, _, stderr := w.run("member", "git-lfs-authenticate acme/web download"); status != 0 {
		t.Fatalf("another user: %d %q", status, stderr)
	}
}
