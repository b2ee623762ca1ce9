package hook

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/access"
	"cpm/internal/names"
	"cpm/internal/store"
)

// gitIn runs git in dir and returns its trimmed output.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// Only git's own "no" means "not a fast-forward"; a failure to find out is
// an error, so that a push is never decided on a guess.
func TestGitAncestry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r.git")
	gitIn(t, filepath.Dir(dir), "init", "-q", "--bare", dir)
	commit := func(parent string) string {
		args := []string{"-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", "-m", "c", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}
		if parent != "" {
			args = append(args, "-p", parent)
		}
		return gitIn(t, dir, args...)
	}
	gitIn(t, dir, "hash-object", "-w", "-t", "tree", "/dev/null")
	a := commit("")
	b := commit(a)
	other := gitIn(t, dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", "-m", "other", "4b825dc642cb6eb9a060e54bf8d69288fbee4904")
	tree := "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	missing := strings.Repeat("b", 40)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name     string
		ctx      context.Context
		dir      string
		old, new string
		path     string // "" keeps PATH
		want     bool
		wantErr  bool
	}{
		{name: "fast-forward", old: a, new: b, want: true},
		{name: "rewind", old: b, new: a, want: false},
		{name: "unrelated", old: a, new: other, want: false},
		{name: "a tree is no fast-forward", old: tree, new: b, want: false},
		{name: "missing object", old: missing, new: b, wantErr: true},
		{name: "missing repository", dir: filepath.Join(t.TempDir(), "gone.git"), old: a, new: b, wantErr: true},
		{name: "cancelled context", ctx: cancelled, old: a, new: b, wantErr: true},
		{name: "no git", path: t.TempDir(), old: a, new: b, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d := tc.ctx, tc.dir
			if ctx == nil {
				ctx = context.Background()
			}
			if d == "" {
				d = dir
			}
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			got, err := GitAncestry(d)(ctx, tc.old, tc.new)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// A push whose ancestry cannot be found out fails as a fault, not as a
// refusal that asks for a force-push permission.
func TestCheckAncestryFailure(t *testing.T) {
	ctx := context.Background()
	st, err := store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := store.Actor{Name: "test"}
	if _, err := st.CreateUser(ctx, a, "writer", false, &store.NewKey{Fingerprint: "SHA256:w", Type: "ssh-ed25519", PublicKey: "x w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateOrg(ctx, a, "acme", "writer"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	c := access.New(st, nil)
	id, err := c.Identify(ctx, "SHA256:w")
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := names.ParseRepoPath("acme/web")
	cause := errors.New("git: executable file not found")
	update := []Update{{Old: strings.Repeat("a", 40), New: strings.Repeat("b", 40), Ref: "refs/heads/main"}}
	err = Check(ctx, c, id, repo, update,
		func(context.Context, string, string) (bool, error) { return false, cause })
	var ae *access.Error
	if !errors.As(err, &ae) || ae.Kind != access.Internal || !errors.Is(err, cause) || access.OutcomeOf(err) != access.Failed {
		t.Errorf("Check with a failing ancestry: %v, want an internal error", err)
	}
}
