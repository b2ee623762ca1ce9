package test

import (
	"crypto/dsa"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/crypto/ssh"

	"cpm/internal/store"
	"cpm/internal/testworld"
)

// wantError checks the interface's error contract: non-zero exit and one
// line on stderr starting "cpm:" that contains want.
func wantError(t *testing.T, r testworld.Result, want string) {
	t.Helper()
	if r.Code == 0 {
		t.Errorf("exit 0, want an error containing %q (stdout %q)", want, r.Stdout)
		return
	}
	line := strings.TrimSuffix(r.Stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "cpm: ") || !strings.Contains(line, want) {
		t.Errorf("stderr %q, want one line \"cpm: …%s…\"", r.Stderr, want)
	}
}

func jsonList(t *testing.T, w *testworld.World, args ...string) []map[string]any {
	t.Helper()
	out := w.MustAdmin(append(args, "--json")...)
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v --json: %v\n%s", args, err, out)
	}
	if v == nil {
		t.Fatalf("%v --json printed null, want an array", args)
	}
	return v
}

func TestAdminLifecycle(t *testing.T) {
	w := testworld.New(t, bin)
	alice, bob, deploy := w.NewKey("alice"), w.NewKey("bob"), w.NewKey("deploy")

	// init is idempotent.
	if out := w.MustAdmin("init"); !strings.Contains(out, fmt.Sprintf("schema version %d", store.SchemaVersion())) {
		t.Errorf("init: %q", out)
	}
	w.MustAdmin("user", "add", "alice", "--admin", "--key", alice.PubPath)
	w.MustAdmin("user", "add", "bob")
	if r := w.Admin(bob.Public+"\n", "key", "add", "bob", "-"); r.Code != 0 || !strings.Contains(r.Stdout, bob.Fingerprint) {
		t.Fatalf("key add from stdin: %+v", r)
	}
	users := jsonList(t, w, "user", "list")
	if len(users) != 2 || users[0]["name"] != "alice" || users[0]["admin"] != true || users[1]["keys"] != 1.0 {
		t.Errorf("user list: %v", users)
	}
	keys := jsonList(t, w, "key", "list", "bob")
	if len(keys) != 1 || keys[0]["fingerprint"] != bob.Fingerprint || keys[0]["user"] != "bob" {
		t.Errorf("key list bob: %v", keys)
	}
	if all := jsonList(t, w, "key", "list"); len(all) != 2 {
		t.Errorf("key list: %v", all)
	}

	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("org", "add-member", "acme", "alice", "--role", "owner")
	w.MustAdmin("org", "add-member", "acme", "bob", "--role", "member")
	w.MustAdmin("org", "add-member", "acme", "bob", "--role", "admin") // role change
	members := jsonList(t, w, "org", "members", "acme")
	if len(members) != 2 || members[0]["user"] != "alice" || members[0]["role"] != "owner" || members[1]["role"] != "admin" {
		t.Errorf("members: %v", members)
	}

	out := w.MustAdmin("repo", "create", "acme/web.git", "--description", "The web site")
	dir := w.RepoDir("acme", "web")
	if !strings.Contains(out, dir) {
		t.Errorf("repo create should say where: %q", out)
	}
	head, err := exec.Command("git", "-C", dir, "symbolic-ref", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(head)) != "refs/heads/main" {
		t.Errorf("HEAD %q, %v", head, err)
	}
	if bare, _ := exec.Command("git", "-C", dir, "rev-parse", "--is-bare-repository").Output(); strings.TrimSpace(string(bare)) != "true" {
		t.Errorf("not bare: %q", bare)
	}
	w.MustAdmin("repo", "create", "acme/docs", "--public")
	repos := jsonList(t, w, "repo", "list", "acme")
	if len(repos) != 2 || repos[0]["full_name"] != "acme/docs" || repos[0]["public"] != true || repos[1]["description"] != "The web site" {
		t.Errorf("repo list: %v", repos)
	}
	orgs := jsonList(t, w, "org", "list")
	if len(orgs) != 1 || orgs[0]["repos"] != 2.0 || orgs[0]["members"] != 2.0 {
		t.Errorf("org list: %v", orgs)
	}

	w.MustAdmin("repo", "grant", "acme/web", "bob", "write")
	w.MustAdmin("repo", "grant", "acme/web", "bob", "admin")
	w.MustAdmin("repo", "revoke", "acme/web", "bob")
	wantError(t, w.Admin("", "repo", "revoke", "acme/web", "bob"), "no grant")
	w.MustAdmin("repo", "protect", "acme/web", "refs/heads/release/*")
	w.MustAdmin("repo", "unprotect", "acme/web", "refs/heads/release/*")
	wantError(t, w.Admin("", "repo", "unprotect", "acme/web", "refs/heads/release/*"), "no protected pattern")

	w.MustAdmin("repo", "deploy-key", "add", "acme/web", deploy.PubPath, "--write")
	dks := jsonList(t, w, "repo", "deploy-key", "list", "acme/web")
	if len(dks) != 1 || dks[0]["fingerprint"] != deploy.Fingerprint || dks[0]["write"] != true || dks[0]["repo"] != "acme/web" {
		t.Errorf("deploy-key list: %v", dks)
	}
	wantError(t, w.Admin("", "key", "remove", deploy.Fingerprint), "deploy key of acme/web")
	w.MustAdmin("repo", "deploy-key", "remove", deploy.Fingerprint)
	w.MustAdmin("key", "remove", bob.Fingerprint)
	if k := jsonList(t, w, "key", "list", "bob"); len(k) != 0 {
		t.Errorf("bob's key not removed: %v", k)
	}
	w.MustAdmin("user", "remove", "bob")

	audit := jsonList(t, w, "audit", "--limit", "0")
	var actions []string
	for i := len(audit) - 1; i >= 0; i-- {
		actions = append(actions, audit[i]["action"].(string))
		if !strings.HasPrefix(audit[i]["actor"].(string), "local:") {
			t.Errorf("actor %v", audit[i]["actor"])
		}
	}
	want := "user.add user.add key.add org.create org.member.set org.member.set org.member.set repo.create repo.create " +
		"repo.grant repo.grant repo.revoke repo.protect repo.unprotect deploy-key.add deploy-key.remove key.remove user.remove"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit\n got %s\nwant %s", got, want)
	}
	if a := jsonList(t, w, "audit", "--limit", "3"); len(a) != 3 {
		t.Errorf("audit --limit 3: %d entries", len(a))
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("org", "create", "empty")
	w.MustAdmin("repo", "create", "acme/web")
	for _, args := range [][]string{
		{"user", "list"}, {"key", "list"}, {"org", "members", "acme"},
		{"repo", "list", "empty"}, {"repo", "deploy-key", "list", "acme/web"},
	} {
		if out := w.MustAdmin(append(args, "--json")...); strings.TrimSpace(out) != "[]" {
			t.Errorf("%v --json = %q, want []", args, out)
		}
	}
}

func TestDeleteNeverLosesData(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	commit := pushCommit(t, w.RepoDir("acme", "web"))

	out := w.MustAdmin("repo", "delete", "acme/web")
	trash, _ := filepath.Glob(filepath.Join(w.DataDir, "trash", "acme", "web.git.*"))
	if len(trash) != 1 || !strings.Contains(out, trash[0]) {
		t.Fatalf("repo delete said %q; trash holds %v", out, trash)
	}
	if got, err := exec.Command("git", "-C", trash[0], "rev-parse", "main").Output(); err != nil || strings.TrimSpace(string(got)) != commit {
		t.Errorf("trashed repository lost its commit: %q %v", got, err)
	}
	if _, err := os.Stat(w.RepoDir("acme", "web")); !os.IsNotExist(err) {
		t.Errorf("repository still in place: %v", err)
	}
	if r := jsonList(t, w, "repo", "list"); len(r) != 0 {
		t.Errorf("repo list after delete: %v", r)
	}
	// The name is free again, and a new repository starts empty.
	w.MustAdmin("repo", "create", "acme/web")

	// org delete refuses while repositories remain; --force trashes them.
	wantError(t, w.Admin("", "org", "delete", "acme"), "still has 1 repository")
	if _, err := os.Stat(w.RepoDir("acme", "web")); err != nil {
		t.Fatalf("refused org delete touched the repository: %v", err)
	}
	out = w.MustAdmin("org", "delete", "acme", "--force")
	if !strings.Contains(out, "moved acme/web to ") {
		t.Errorf("org delete --force: %q", out)
	}
	if trash, _ = filepath.Glob(filepath.Join(w.DataDir, "trash", "acme", "web.git.*")); len(trash) != 2 {
		t.Errorf("trash after org delete: %v", trash)
	}
	wantError(t, w.Admin("", "repo", "list", "acme"), `organisation "acme" not found`)
}

// pushCommit makes one commit on main and pushes it into the bare repository.
func pushCommit(t *testing.T, bare string) string {
	t.Helper()
	work := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello\n"), 0o644)
	git("add", "README")
	git("commit", "-q", "-m", "first")
	git("push", "-q", bare, "main")
	return git("rev-parse", "HEAD")
}

func TestOwnersAreNeverLost(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("user", "add", "alice")
	w.MustAdmin("user", "add", "bob")
	w.MustAdmin("org", "create", "acme", "--owner", "alice")
	wantError(t, w.Admin("", "user", "remove", "alice"), "last owner of acme")
	wantError(t, w.Admin("", "org", "remove-member", "acme", "alice"), "last owner")
	wantError(t, w.Admin("", "org", "add-member", "acme", "alice", "--role", "member"), "last owner")
	w.MustAdmin("org", "add-member", "acme", "bob", "--role", "owner")
	w.MustAdmin("user", "remove", "alice")
	m := jsonList(t, w, "org", "members", "acme")
	if len(m) != 1 || m[0]["user"] != "bob" {
		t.Errorf("members: %v", m)
	}
}

// hostileNames are refused everywhere a name is taken.
var hostileNames = []string{
	"", ".", "..", "../x", "a/../../etc", "-rf", "--help-me", ".hidden", "a b", "a\tb", "a\nb",
	"$(touch pwned)", "`id`", "a;id", "a|id", "a&b", "a>b", "x.git.git", "x.lock", "trailing.",
	"ünïcode", "a\x1b[31m", "~root", "a:b", "a\\b", "'quoted'", "\"dq\"", "*", "?",
	strings.Repeat("a", 65),
}

func TestHostileNames(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("user", "add", "alice")
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	before := snapshot(t, w)
	for _, n := range hostileNames {
		for _, args := range [][]string{
			{"user", "add", n},
			{"org", "create", n},
			{"repo", "create", "acme/" + n},
			{"repo", "create", n + "/web"},
			{"org", "add-member", "acme", n, "--role", "member"},
			{"org", "add-member", n, "alice", "--role", "member"},
			{"repo", "grant", "acme/web", n, "read"},
			{"repo", "delete", "acme/" + n},
			{"key", "list", n},
		} {
			if n == "" && args[0] == "key" {
				continue // an empty optional argument is no argument: list every key
			}
			r := w.Admin("", args...)
			if r.Code == 0 {
				t.Errorf("%q accepted", args)
				continue
			}
			line := strings.TrimSuffix(r.Stderr, "\n")
			if !strings.HasPrefix(line, "cpm: ") || strings.Contains(line, "\n") || strings.Contains(line, "\x1b") {
				t.Errorf("%q: stderr %q is not one clean cpm: line", args, r.Stderr)
			}
		}
	}
	for _, p := range []string{"acme", "/acme/web", "acme/web/x", "acme//web", "acme/web/", "/etc/passwd", "acme/.git"} {
		wantError(t, w.Admin("", "repo", "create", p), "invalid name")
	}
	if after := snapshot(t, w); after != before {
		t.Errorf("hostile input changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot summarises the database and the repositories on disk.
func snapshot(t *testing.T, w *testworld.World) string {
	t.Helper()
	var files []string
	filepath.Walk(w.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			rel, _ := filepath.Rel(w.DataDir, p)
			files = append(files, rel)
		}
		return nil
	})
	return fmt.Sprint(w.MustAdmin("user", "list", "--json"), w.MustAdmin("org", "list", "--json"),
		w.MustAdmin("repo", "list", "--json"), len(jsonList(t, w, "audit", "--limit", "0")), files)
}

func TestHostileKeys(t *testing.T) {
	w := testworld.New(t, bin)
	good := w.NewKey("good")
	rsa1024 := w.NewKeyType("rsa1024", "rsa", 1024)
	rsa3072 := w.NewKeyType("rsa3072", "rsa", 3072)
	ecdsa := w.NewKeyType("ecdsa", "ecdsa", 256)
	ca := w.NewKey("ca")
	if out, err := exec.Command("ssh-keygen", "-q", "-s", ca.Path, "-I", "id", "-n", "alice", good.PubPath).CombinedOutput(); err != nil {
		t.Fatalf("sign certificate: %v %s", err, out)
	}
	cert, _ := os.ReadFile(strings.TrimSuffix(good.PubPath, ".pub") + "-cert.pub")
	priv, _ := os.ReadFile(good.Path)

	var dk dsa.PrivateKey
	dsa.GenerateParameters(&dk.Parameters, rand.Reader, dsa.L1024N160)
	dsa.GenerateKey(&dk, rand.Reader)
	dsaPub, _ := ssh.NewPublicKey(&dk.PublicKey)
	dsaLine := string(ssh.MarshalAuthorizedKey(dsaPub))

	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "empty"},
		{"junk", "this is not a key\n", "not an OpenSSH public key"},
		{"truncated", good.Public[:40], "not an OpenSSH public key"},
		{"dsa", dsaLine, "DSA"},
		{"rsa 1024", rsa1024.Public, "too short"},
		{"certificate", string(cert), "certificates"},
		{"private key", string(priv), "private key"},
		{"command option", `command="/bin/sh -c id" ` + good.Public, "options"},
		{"restrict option", `no-pty,permitopen="*:*" ` + good.Public, "options"},
		{"two keys", good.Public + "\n" + ecdsa.Public + "\n", "more than one line"},
		{"embedded newline in comment", good.Public + "\ncommand=x", "more than one line"},
		{"NUL", good.Public + "\x00", "NUL"},
		{"huge", good.Public + " " + strings.Repeat("x", 20000), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.Admin(tt.text, "user", "add", "mallory", "--key", "-")
			wantError(t, r, tt.want)
			if !strings.Contains(r.Stderr, "invalid key") {
				t.Errorf("stderr %q should say invalid key", r.Stderr)
			}
		})
	}
	if u := jsonList(t, w, "user", "list"); len(u) != 0 {
		t.Fatalf("a rejected key left a user behind: %v", u)
	}
	// Accepted types, and a key belongs to one principal only.
	w.MustAdmin("user", "add", "alice", "--key", good.PubPath)
	w.MustAdmin("key", "add", "alice", rsa3072.PubPath)
	w.MustAdmin("key", "add", "alice", ecdsa.PubPath)
	wantError(t, w.Admin("", "user", "add", "bob", "--key", good.PubPath), "already exists")
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	wantError(t, w.Admin("", "repo", "deploy-key", "add", "acme/web", ecdsa.PubPath), "already exists")
	wantError(t, w.Admin("", "key", "add", "alice", filepath.Dir(good.Path)), "not a regular file")
	wantError(t, w.Admin("", "key", "remove", "SHA256:nope"), "invalid fingerprint")
	wantError(t, w.Admin("", "key", "remove", "SHA256:"+strings.Repeat("A", 43)), "not found")
	if u := jsonList(t, w, "user", "list"); len(u) != 1 || u[0]["keys"] != 3.0 {
		t.Errorf("users: %v", u)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	w := testworld.New(t, bin)
	wantError(t, w.Admin("", "frobnicate"), "unexpected argument")
	wantError(t, w.Admin("", "user", "add"), "expected")
	wantError(t, w.Admin("", "org", "add-member", "acme", "bob", "--role", "god"), `"owner","admin","member"`)
	wantError(t, w.Admin("", "repo", "grant", "acme/web", "bob", "root"), `"read","write","admin"`)
	wantError(t, w.Admin("", "user", "remove", "nobody"), `user "nobody" not found`)
	wantError(t, w.Admin("", "org", "members", "nope"), `organisation "nope" not found`)
	wantError(t, w.Admin("", "repo", "create", "nope/web"), `organisation "nope" not found`)
	wantError(t, w.Admin("", "audit", "--limit=-1"), "negative")
	if _, err := os.Stat(filepath.Join(w.DataDir, "repos", "nope")); !os.IsNotExist(err) {
		t.Errorf("failed create left a folder: %v", err)
	}

	// Commands other than init need an initialised data dir.
	empty := filepath.Join(w.Root, "empty")
	r := w.Admin("", "--data-dir", empty, "user", "list")
	wantError(t, r, "run cpm-admin init")

	if r := w.Admin("", "--help"); r.Code != 0 || !strings.Contains(r.Stdout, "repo") {
		t.Errorf("--help: %+v", r)
	}
}

func TestSchemaVersionChecks(t *testing.T) {
	w := testworld.New(t, bin)
	db, err := sql.Open("sqlite3", filepath.Join(w.DataDir, "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wantError(t, w.Admin("", "user", "list"), "newer than this cpm knows")
	wantError(t, w.Admin("", "init"), "newer than this cpm knows")
}

func TestDataDirFromConfigAndEnvironment(t *testing.T) {
	w := testworld.New(t, bin)
	fromFile := filepath.Join(w.Root, "from-file")
	cfg := filepath.Join(w.Root, "cpm.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+fromFile+"\n"), 0o600)

	cmd := exec.Command(bin.Admin, "--config", cfg, "init")
	cmd.Env = testworld.Env()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), fromFile) {
		t.Fatalf("init with config: %v %s", err, out)
	}
	fromEnv := filepath.Join(w.Root, "from-env")
	cmd = exec.Command(bin.Admin, "init")
	cmd.Env = append(testworld.Env(), "CPM_DATA_DIR="+fromEnv, "CPM_CONFIG="+cfg)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), fromEnv) {
		t.Fatalf("env must beat the file: %v %s", err, out)
	}
	fi, err := os.Stat(fromEnv)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	os.WriteFile(cfg, []byte("data_dri: /tmp/x\n"), 0o600)
	r := w.Admin("", "--config", cfg, "user", "list")
	wantError(t, r, "data_dri")
}

func TestConcurrentAdmins(t *testing.T) {
	w := testworld.New(t, bin)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := w.Admin("", "user", "add", fmt.Sprintf("user%02d", i)); r.Code != 0 {
				errs <- r.Stderr
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent user add: %s", e)
	}
	if u := jsonList(t, w, "user", "list"); len(u) != n {
		t.Errorf("%d users, want %d", len(u), n)
	}
	if a := jsonList(t, w, "audit", "--limit", "0"); len(a) != n {
		t.Errorf("%d audit rows, want %d", len(a), n)
	}
}

func TestKeyGenerate(t *testing.T) {
	w := testworld.New(t, bin)
	p := filepath.Join(w.Root, "id_new")
	out := w.MustAdmin("key", "generate", p)
	for f, mode := range map[string]os.FileMode{p: 0o600, p + ".pub": 0o644} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	fp, _ := exec.Command("ssh-keygen", "-lf", p+".pub").Output()
	if !strings.Contains(out, strings.Fields(string(fp))[1]) {
		t.Errorf("key generate printed %q, ssh-keygen says %q", out, fp)
	}
	wantError(t, w.Admin("", "key", "generate", p), "already exists")
	w.MustAdmin("user", "add", "carol", "--key", p+".pub")
}

func TestAuthorizedKeys(t *testing.T) {
	w := testworld.New(t, bin)
	alice, deploy := w.NewKey("alice"), w.NewKey("deploy")
	w.MustAdmin("user", "add", "alice", "--key", alice.PubPath)
	w.MustAdmin("org", "create", "acme")
	w.MustAdmin("repo", "create", "acme/web")
	w.MustAdmin("repo", "deploy-key", "add", "acme/web", deploy.PubPath)
	all := strings.Split(strings.TrimSpace(w.MustAdmin("authorized-keys")), "\n")
	if len(all) != 2 {
		t.Fatalf("authorized-keys: %q", all)
	}
	want := fmt.Sprintf(`command="'%s' key-1 --data-dir '%s'",restrict %s`, bin.Shell, w.DataDir, strings.Join(strings.Fields(alice.Public)[:2], " "))
	if all[0] != want {
		t.Errorf("line\n got %s\nwant %s", all[0], want)
	}
	one := strings.TrimSpace(w.MustAdmin("authorized-keys", "--fingerprint", deploy.Fingerprint))
	if one != all[1] || !strings.Contains(one, " key-2 ") {
		t.Errorf("--fingerprint: %q", one)
	}
	if out := w.MustAdmin("authorized-keys", "--fingerprint", "SHA256:"+strings.Repeat("A", 43)); !strings.HasPrefix(out, "# ") {
		t.Errorf("unknown fingerprint must print only a comment: %q", out)
	}
	wantError(t, w.Admin("", "authorized-keys", "--fingerprint", "nope"), "invalid fingerprint")
}
