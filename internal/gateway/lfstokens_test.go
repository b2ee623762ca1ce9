package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"cpm/internal/access"
	"cpm/internal/store"
)

// TestStoreTokensMint: git-lfs-authenticate through the real store
// (StoreTokens): a user's token is of kind lfs, scoped to the one
// repository, read-only for a download and writing for a writer's
// upload; a deploy key's speaks for its repository with the key's write.
func TestStoreTokensMint(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	st := w.gw.Store
	if _, err := st.AddDeployKey(ctx, store.Actor{Name: "test"}, "acme", "web",
		store.NewKey{Fingerprint: "SHA256:deploy", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 deploy"}, true); err != nil {
		t.Fatal(err)
	}
	dk, err := w.gw.Access.Identify(ctx, "SHA256:deploy")
	if err != nil || !dk.IsDeployKey() {
		t.Fatalf("deploy key: %+v %v", dk, err)
	}
	w.ids["deploy"] = dk
	w.gw.HTTPURL, w.gw.LFSTokens = "https://git.example.com", StoreTokens{Store: st}
	web, err := st.Repo(ctx, "acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, op string
		readOnly bool
	}{
		{"member", "download", true},
		{"owner", "upload", false},
		{"owner", "download", true},
		{"deploy", "upload", false},
		{"deploy", "download", true},
	} {
		status, stdout, stderr := w.run(tc.user, "git-lfs-authenticate acme/web "+tc.op)
		var a lfsAuth
		if status != 0 || json.Unmarshal([]byte(stdout), &a) != nil {
			t.Fatalf("%s %s: %d %q %q", tc.user, tc.op, status, stdout, stderr)
		}
		secret := strings.TrimPrefix(a.Header["Authorization"], "Bearer ")
		id, err := w.gw.Access.IdentifyToken(ctx, secret)
		if err != nil {
			t.Fatalf("%s %s: the minted token: %v", tc.user, tc.op, err)
		}
		tok := id.Token
		switch {
		case tok == nil || tok.Kind != store.TokenLFS || tok.ReadOnly != tc.readOnly:
			t.Errorf("%s %s: token %+v, want kind lfs, read-only %v", tc.user, tc.op, tok, tc.readOnly)
		case tc.user == "deploy" && (id.RepoID != web.ID || id.CanWrite == tc.readOnly):
			t.Errorf("deploy %s: %+v, want repository %d, write %v", tc.op, id.KeyOwner, web.ID, !tc.readOnly)
		case tc.user != "deploy" && (id.UserID != w.ids[tc.user].UserID || !tok.Scoped || !slices.Equal(tok.RepoIDs, []int64{web.ID})):
			t.Errorf("%s %s: %+v %+v, want the user scoped to acme/web", tc.user, tc.op, id.KeyOwner, tok)
		}
	}
}

// TestStoreTokensFollowKey: a git-lfs-authenticate token is the ssh key
// it was made through: a deploy key's is named as the key is over ssh
// (one lock owner across mints), and removing the key (a deploy key, or
// the user's key that asked) revokes the token at once.
func TestStoreTokensFollowKey(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	st, actor := w.gw.Store, store.Actor{Name: "test"}
	if _, err := st.AddDeployKey(ctx, actor, "acme", "web",
		store.NewKey{Fingerprint: "SHA256:deploy", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 deploy"}, true); err != nil {
		t.Fatal(err)
	}
	dk, err := w.gw.Access.Identify(ctx, "SHA256:deploy")
	if err != nil {
		t.Fatal(err)
	}
	w.ids["deploy"] = dk
	w.gw.HTTPURL, w.gw.LFSTokens = "https://git.example.com", StoreTokens{Store: st}
	mint := func(user string) string {
		t.Helper()
		status, stdout, stderr := w.run(user, "git-lfs-authenticate acme/web upload")
		var a lfsAuth
		if status != 0 || json.Unmarshal([]byte(stdout), &a) != nil {
			t.Fatalf("%s: %d %q %q", user, status, stdout, stderr)
		}
		return strings.TrimPrefix(a.Header["Authorization"], "Bearer ")
	}
	first, second := mint("deploy"), mint("deploy")
	for _, secret := range []string{first, second} {
		id, err := w.gw.Access.IdentifyToken(ctx, secret)
		if err != nil || id.Name() != dk.Name() || !id.CanWrite {
			t.Fatalf("deploy key's token: %q write %v %v, want %q writing", id.Name(), id.CanWrite, err, dk.Name())
		}
	}
	ownerTok := mint("owner")
	if _, err := st.DeleteDeployKey(ctx, actor, "SHA256:deploy"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteUserKey(ctx, actor, "SHA256:owner"); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"deploy key's": first, "owner's": ownerTok} {
		if id, err := w.gw.Access.IdentifyToken(ctx, secret); !errors.Is(err, access.ErrUnknownToken) {
			t.Errorf("%s token after its key was removed: %q %v, want unknown", name, id.Name(), err)
		}
	}
}
