package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// company is a world with every kind of principal, a private and a public
// repository, and a running server.
type company struct {
	w       *testworld.World
	srv     *testworld.Server
	keys    map[string]testworld.Key
	clients map[string]*testworld.Client
	main    string // commit of acme/web main
}

func newCompany(t *testing.T, serverFlags ...string) *company {
	t.Helper()
	w := testworld.New(t, bin)
	c := &company{w: w, keys: map[string]testworld.Key{}, clients: map[string]*testworld.Client{}}
	for _, u := range []string{"owner", "oadmin", "member", "writer", "radmin", "reader", "stranger", "siteadmin"} {
		k := w.NewKey(u)
		c.keys[u] = k
		args := []string{"user", "add", u, "--key", k.PubPath}
		if u == "siteadmin" {
			args = append(args, "--admin")
		}
		w.MustAdmin(args...)
	}
	w.MustAdmin("org", "create", "acme", "--owner", "owner")
	w.MustAdmin("org", "add-member", "acme", "oadmin", "--role", "admin")
	w.MustAdmin("org", "add-member", "acme", "member", "--role", "member")
	w.MustAdmin("repo", "create", "acme/web")
	w.MustAdmin("repo", "create", "acme/pub", "--public")
	w.MustAdmin("repo", "grant", "acme/web", "writer", "write")
	w.MustAdmin("repo", "grant", "acme/web", "radmin", "admin")
	w.MustAdmin("repo", "grant", "acme/web", "reader", "read")
	w.MustAdmin("repo", "protect", "acme/web", "refs/heads/prot/*")
	for _, d := range []string{"dro", "drw"} {
		k := w.NewKey(d)
		c.keys[d] = k
		args := []string{"repo", "deploy-key", "add", "acme/web", k.PubPath}
		if d == "drw" {
			args = append(args, "--write")
		}
		w.MustAdmin(args...)
	}
	c.srv = w.StartServer(serverFlags...)
	for name, k := range c.keys {
		c.clients[name] = c.srv.Client(k)
	}
	// Seed both repositories with a main branch.
	owner := c.clients["owner"]
	for _, repo := range []string{"acme/web", "acme/pub"} {
		dir, r := owner.Clone(repo)
		if r.Code != 0 {
			t.Fatalf("seed clone %s: %s", repo, r.Stderr)
		}
		commit := owner.Commit(dir, "seed "+repo)
		owner.MustGit(dir, "push", "-q", "origin", "HEAD:main")
		if repo == "acme/web" {
			c.main = commit
		}
	}
	return c
}

// outcome classifies a git or ssh result: "A" allowed, "D" denied openly,
// "N" answered as not found.
func outcome(r testworld.Result) string {
	switch {
	case r.Code == 0:
		return "A"
	case strings.Contains(r.Stderr, "not found"):
		return "N"
	case strings.Contains(r.Stderr, "permission denied") || strings.Contains(r.Stderr, "pre-receive hook declined"):
		return "D"
	}
	return "?(" + strings.TrimSpace(r.Stderr) + ")"
}

func TestRolesOverSSH(t *testing.T) {
	c := newCompany(t)
	roleMatrix(t, c, c.clients)
}

// TestRolesOverOpenSSH runs the same matrix through a real sshd, with
// every key sent to cpm-shell's forced command by authorized_keys.
func TestRolesOverOpenSSH(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartSSHD()
	clients := map[string]*testworld.Client{}
	for name, k := range c.keys {
		clients[name] = d.Client(k)
	}
	roleMatrix(t, c, clients)
}

// roleMatrix checks every role against every operation, each client
// talking to the server it was made for; setup goes through the owner.
func roleMatrix(t *testing.T, c *company, clients map[string]*testworld.Client) {
	owner := clients["owner"]
	// Columns: clone web, push a new branch, fast-forward a protected
	// branch, force-push it, delete it, force-push an unprotected branch,
	// delete it, clone the public repo, push to it, create a repo by pushing.
	want := map[string]string{
		"owner":     "AAAAAAAAAA",
		"oadmin":    "AAAAAAAAAA",
		"siteadmin": "AAAAAAAAAA",
		"radmin":    "AAAAAAAADN",
		"writer":    "AAADDAAADN",
		"member":    "ADDDDDDADN",
		"reader":    "ADDDDDDADN",
		"stranger":  "NNNNNNNADN",
		"drw":       "AAADDAANNN",
		"dro":       "ADDDDDDNNN",
	}
	for role, row := range want {
		t.Run(role, func(t *testing.T) {
			cl := clients[role]
			// Branches of this role's own, made by the owner, so roles do not
			// step on each other.
			seed, r := owner.Clone("acme/web")
			if r.Code != 0 {
				t.Fatal(r.Stderr)
			}
			owner.MustGit(seed, "push", "-q", "origin", "HEAD:refs/heads/prot/"+role, "HEAD:refs/heads/feat/"+role)

			var got []string
			_, r = cl.Clone("acme/web")
			got = append(got, outcome(r))
			// Work in the owner's clone, pushing with this role's key.
			work, _ := owner.Clone("acme/web")
			owner.MustGit(work, "fetch", "-q", "origin", "prot/"+role, "feat/"+role)
			next := owner.Commit(work, "next by "+role)
			got = append(got, outcome(cl.Git(work, "push", "-q", "origin", "HEAD:refs/heads/new/"+role)))
			got = append(got, outcome(cl.Git(work, "push", "-q", "origin", "HEAD:refs/heads/prot/"+role)))
			owner.MustGit(work, "commit", "-q", "--amend", "-m", "rewritten by "+role)
			_ = next
			got = append(got, outcome(cl.Git(work, "push", "-q", "-f", "origin", "HEAD:refs/heads/prot/"+role)))
			got = append(got, outcome(cl.Git(work, "push", "-q", "origin", ":refs/heads/prot/"+role)))
			owner.MustGit(work, "commit", "-q", "--amend", "-m", "rewritten again by "+role)
			got = append(got, outcome(cl.Git(work, "push", "-q", "-f", "origin", "HEAD:refs/heads/feat/"+role)))
			got = append(got, outcome(cl.Git(work, "push", "-q", "origin", ":refs/heads/feat/"+role)))

			pub, r := cl.Clone("acme/pub")
			got = append(got, outcome(r))
			if r.Code != 0 {
				pub, _ = owner.Clone("acme/pub")
			}
			owner.Commit(pub, "pub by "+role)
			got = append(got, outcome(cl.Git(pub, "push", "-q", "origin", "HEAD:refs/heads/from-"+role)))

			fresh := filepath.Join(c.w.Root, "fresh-"+role)
			os.MkdirAll(fresh, 0o755)
			cl.MustGit(fresh, "init", "-q", "-b", "main")
			cl.Commit(fresh, "new repo by "+role)
			got = append(got, outcome(cl.Git(fresh, "push", "-q", cl.URL("acme/new-"+role), "HEAD:main")))

			if g := strings.Join(got, ""); g != row {
				t.Errorf("%s: got %s want %s", role, g, row)
			}
		})
	}
	// Repositories created by pushing are real: HEAD on main, hooks in place.
	for _, role := range []string{"owner", "oadmin", "siteadmin"} {
		dir := c.w.RepoDir("acme", "new-"+role)
		if out, err := exec.Command("git", "-C", dir, "symbolic-ref", "HEAD").Output(); err != nil || strings.TrimSpace(string(out)) != "refs/heads/main" {
			t.Errorf("acme/new-%s HEAD: %q %v", role, out, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "hooks", "pre-receive")); err != nil {
			t.Errorf("acme/new-%s has no pre-receive hook: %v", role, err)
		}
	}
	for _, role := range []string{"member", "stranger", "writer"} {
		if _, err := os.Stat(c.w.RepoDir("acme", "new-"+role)); !os.IsNotExist(err) {
			t.Errorf("acme/new-%s exists: %v", role, err)
		}
	}
}

// Missing and forbidden repositories answer in exactly the same words.
func TestMissingAndForbiddenLookAlike(t *testing.T) {
	c := newCompany(t)
	s := c.clients["stranger"]
	forbidden := s.Git("", "ls-remote", c.srv.URL("acme/web"))
	missing := s.Git("", "ls-remote", c.srv.URL("acme/nope"))
	norg := s.Git("", "ls-remote", c.srv.URL("nope/web"))
	norm := func(r testworld.Result, name string) string {
		return strings.ReplaceAll(r.Stderr, name, "X")
	}
	if forbidden.Code == 0 || norm(forbidden, "acme/web") != norm(missing, "acme/nope") || norm(missing, "acme/nope") != norm(norg, "nope/web") {
		t.Errorf("answers differ:\n%q\n%q\n%q", forbidden.Stderr, missing.Stderr, norg.Stderr)
	}
}

func TestWhoamiInfoAndShell(t *testing.T) {
	c := newCompany(t)
	if r := c.clients["writer"].SSH(nil, "whoami"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "writer" {
		t.Errorf("whoami: %+v", r)
	}
	r := c.clients["writer"].SSH(nil, "info")
	if r.Code != 0 || !strings.Contains(r.Stdout, "write  acme/web") || !strings.Contains(r.Stdout, "read   acme/pub") {
		t.Errorf("info: %+v", r)
	}
	r = c.clients["stranger"].SSH(nil, "info")
	if strings.Contains(r.Stdout, "acme/web") || !strings.Contains(r.Stdout, "acme/pub") {
		t.Errorf("info for a stranger reveals too much or too little: %q", r.Stdout)
	}
	r = c.clients["dro"].SSH(nil, "info")
	if !strings.Contains(r.Stdout, "read   acme/web") || strings.Contains(r.Stdout, "acme/pub") {
		t.Errorf("info for a deploy key: %q", r.Stdout)
	}
	// No command: a greeting and a non-zero exit.
	r = c.clients["writer"].SSH(nil)
	if r.Code == 0 || !strings.Contains(r.Stderr, "does not provide shell access") {
		t.Errorf("shell: %+v", r)
	}
}

func TestProtocolV2AndArchive(t *testing.T) {
	c := newCompany(t)
	cl := c.clients["reader"]
	r := cl.Git("", "-c", "protocol.version=2", "ls-remote", c.srv.URL("acme/web"))
	if r.Code != 0 || !strings.Contains(r.Stdout, c.main) {
		t.Fatalf("ls-remote v2: %+v", r)
	}
	cmd := exec.Command("git", "-c", "protocol.version=2", "ls-remote", c.srv.URL("acme/web"))
	cmd.Env = append(os.Environ(), "GIT_TRACE_PACKET=1", "GIT_SSH_COMMAND=ssh "+strings.Join(cl.SSHArgs(), " "))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "< version 2") {
		t.Errorf("server did not speak protocol v2: %v\n%s", err, out)
	}
	r = cl.Git("", "archive", "--remote="+c.srv.URL("acme/web"), "main", "-o", filepath.Join(c.w.Root, "a.tar"))
	if r.Code != 0 {
		t.Errorf("archive: %+v", r)
	}
	r = c.clients["stranger"].Git("", "archive", "--remote="+c.srv.URL("acme/web"), "main")
	if outcome(r) != "N" {
		t.Errorf("archive by a stranger: %+v", r)
	}
}

func TestPushIsAudited(t *testing.T) {
	c := newCompany(t)
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	commit := cl.Commit(dir, "audited")
	cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	audit := jsonList(t, c.w, "audit", "--limit", "1")
	d, _ := audit[0]["details"].(map[string]any)
	if audit[0]["action"] != "push" || audit[0]["actor"] != "writer" || audit[0]["target"] != "acme/web" ||
		!strings.HasPrefix(fmt.Sprint(audit[0]["remote_addr"]), "127.0.0.1:") || d["key"] != c.keys["writer"].Fingerprint ||
		!strings.Contains(fmt.Sprint(d["refs"]), "refs/heads/main "+c.main[:12]+".."+commit[:12]) {
		t.Errorf("audit row: %v", audit[0])
	}
}

func TestGitDaemon(t *testing.T) {
	c := newCompany(t)
	dir := filepath.Join(c.w.Root, "anon")
	if out, err := exec.Command("git", "clone", "-q", "git://"+c.srv.GitAddr+"/acme/pub.git", dir).CombinedOutput(); err != nil {
		t.Fatalf("anonymous clone of a public repository: %v %s", err, out)
	}
	cmd := exec.Command("git", "-c", "protocol.version=2", "ls-remote", "git://"+c.srv.GitAddr+"/acme/pub.git")
	cmd.Env = append(os.Environ(), "GIT_TRACE_PACKET=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "< version 2") {
		t.Errorf("git:// protocol v2: %v %s", err, out)
	}
	for _, path := range []string{"acme/web.git", "acme/nope.git", "../../etc/passwd", "acme/pub.git/../web.git"} {
		out, err := exec.Command("git", "ls-remote", "git://"+c.srv.GitAddr+"/"+path).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "repository not found") {
			t.Errorf("git:// %s: %v %s", path, err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
	exec.Command("git", "-C", dir, "add", "x").Run()
	exec.Command("git", "-C", dir, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "x").Run()
	if out, err := exec.Command("git", "-C", dir, "push", "origin", "HEAD:main").CombinedOutput(); err == nil {
		t.Errorf("push over git:// accepted: %s", out)
	}
}

var execCommand = exec.Command

// Through OpenSSH, GIT_PROTOCOL reaches cpm-shell by AcceptEnv, and the
// forced command passes it to git.
func TestProtocolV2OverOpenSSH(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartSSHD()
	cl := d.Client(c.keys["reader"])
	cmd := exec.Command("git", "-c", "protocol.version=2", "ls-remote", cl.URL("acme/web"))
	cmd.Env = append(testworld.Env(), "GIT_TRACE_PACKET=1", "GIT_SSH_COMMAND=ssh "+strings.Join(cl.SSHArgs(), " "))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "< version 2") || !strings.Contains(string(out), c.main) {
		t.Errorf("protocol v2 through sshd: %v\n%s", err, out)
	}
	if r := c.clients["reader"].SSH(nil, "whoami"); r.Code != 0 {
		t.Errorf("%+v", r)
	}
	log, _ := os.ReadFile(filepath.Join(c.w.DataDir, "cpm-shell.log"))
	if !strings.Contains(string(log), `"mode":"forced-command"`) || !strings.Contains(string(log), `"user":"reader"`) {
		t.Errorf("forced-command sessions are not logged to cpm-shell.log:\n%s", log)
	}
}
