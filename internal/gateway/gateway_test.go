package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/admin"
	"cpm/internal/datadir"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// world is a data dir with an organisation acme (owner "owner", member
// "member"), a private acme/web, a public acme/pub, and an outsider.
type world struct {
	gw  *Gateway
	ids map[string]access.Identity
}

func newWorld(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	dir, err := datadir.New(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	// No hook binary: these tests push nothing.
	st, _, err := admin.Init(ctx, dir, "", "/nonexistent/cpm-hook")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st, repos.RootOf(dir, "/nonexistent/cpm-hook"), store.Actor{Name: "test"})
	ch := access.New(st, nil)
	w := world{ids: map[string]access.Identity{}}
	for _, u := range []string{"owner", "member", "outsider"} {
		fp := "SHA256:" + u
		if _, err := st.CreateUser(ctx, svc.Actor, u, false, &store.NewKey{Fingerprint: fp, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 " + u}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, func() error { _, err := svc.CreateOrg(ctx, "acme", "owner"); return err })
	must(t, func() error { return svc.SetMember(ctx, "acme", "member", "member") })
	must(t, func() error { _, _, err := svc.CreateRepo(ctx, "acme/web", false, ""); return err })
	must(t, func() error { _, _, err := svc.CreateRepo(ctx, "acme/pub", true, ""); return err })
	for _, u := range []string{"owner", "member", "outsider"} {
		id, err := ch.Identify(ctx, "SHA256:"+u)
		if err != nil {
			t.Fatal(err)
		}
		w.ids[u] = id
	}
	w.gw = &Gateway{Access: ch, Store: st, Disk: svc.Disk, DataDir: dir, Log: zerolog.Nop()}
	return w
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// run serves one command as user and returns the exit status, stdout and
// stderr.
func (w world) run(user, command string) (int, string, string) {
	var out, errOut bytes.Buffer
	status := w.gw.Serve(context.Background(), Session{
		Identity: w.ids[user], Command: command, GitProtocol: "version=2",
		// A flush packet: git has what it needs and ends cleanly.
		Stdin: strings.NewReader("0000"), Stdout: &out, Stderr: &errOut,
	})
	return status, out.String(), errOut.String()
}

func TestServe(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name, user, command string
		status              int
		stdout, stderr      string // substrings; "" checks nothing
	}{
		{"whoami", "member", "whoami", 0, "member\n", ""},
		{"shell", "member", "", 1, "", "Hi member! You've authenticated to cpm, which does not provide shell access.\n"},
		{"invalid", "member", "rm -rf /", 1, "", "cpm: invalid command"},
		{"info", "member", "info", 0, "acme/web", ""},
		{"info hides", "outsider", "info", 0, "acme/pub", ""},
		{"read", "member", "git-upload-pack 'acme/web'", 0, "version 2", ""},
		{"read canonical case", "member", "git-upload-pack 'ACME/Web.git'", 0, "version 2", ""},
		{"public read", "outsider", "git-upload-pack 'acme/pub'", 0, "version 2", ""},
		{"hidden", "outsider", "git-upload-pack 'acme/web'", 1, "", "cpm: repository acme/web not found\n"},
		{"missing", "member", "git-upload-pack 'acme/nope'", 1, "", "cpm: repository acme/nope not found\n"},
		{"push denied", "member", "git-receive-pack 'acme/web'", 1, "", "cpm: acme/web: permission denied (needs write, has read)\n"},
		{"push to create by a member", "member", "git-receive-pack 'acme/new'", 1, "", "cpm: repository acme/new not found\n"},
		{"push to create by the owner", "owner", "git-receive-pack 'acme/made'", 0, "report-status", ""},
		{"peer verb from a user", "owner", "cpm-peer hello", 1, "", "cpm: cpm-peer commands are for approved neighbour nodes\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := w.run(tt.user, tt.command)
			if status != tt.status || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
			}
			if tt.status != 0 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
		})
	}
	if status, _, stderr := w.run("outsider", "info"); status != 0 || strings.Contains(stderr, "web") {
		t.Errorf("info shows a hidden repository: %q", stderr)
	}
	if _, err := w.gw.Store.Repo(context.Background(), "acme", "made"); err != nil {
		t.Errorf("push-to-create did not create: %v", err)
	}
}

func TestClientLine(t *testing.T) {
	cause := errors.New("disk on fire at /srv/cpm")
	tests := []struct {
		err     error
		line    string
		outcome access.Outcome
	}{
		{nil, "", access.Allowed},
		{refuse("no %s here", "shell"), "cpm: no shell here", access.Refused},
		{&access.Error{Kind: access.NotFound, Repo: "a/b"}, "cpm: repository a/b not found", access.Refused},
		{&access.Error{Kind: access.Denied, Repo: "a/b", Reason: "needs write, has read"}, "cpm: a/b: permission denied (needs write, has read)", access.Refused},
		{&access.Error{Kind: access.Denied, Repo: "a/b", Ref: "refs/heads/main", Reason: "force-push of protected refs/heads/main needs admin"}, "cpm: refs/heads/main: force-push of protected refs/heads/main needs admin", access.Refused},
		{&access.Error{Kind: access.ReadOnly, Repo: "a/b", Reason: "a read-only replica of x; push to ssh://x/a/b.git"}, "cpm: a/b is a read-only replica of x; push to ssh://x/a/b.git", access.Refused},
		{&access.Error{Kind: access.Internal, Repo: "a/b", Err: cause}, "cpm: internal error; try again later", access.Failed},
		{&failure{line: "cpm: could not create a/b", err: cause}, "cpm: could not create a/b", access.Failed},
		{fmt.Errorf("wrapped: %w", cause), "cpm: internal error; try again later", access.Failed},
	}
	for _, tt := range tests {
		if tt.err != nil {
			if got := clientLine(tt.err); got != tt.line {
				t.Errorf("%v: line %q, want %q", tt.err, got, tt.line)
			}
			if strings.Contains(clientLine(tt.err), "fire") {
				t.Errorf("%v: the cause reached the client", tt.err)
			}
		}
		if got := access.OutcomeOf(tt.err); got != tt.outcome {
			t.Errorf("%v: outcome %v, want %v", tt.err, got, tt.outcome)
		}
	}
}
