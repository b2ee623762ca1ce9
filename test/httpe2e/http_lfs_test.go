package httpe2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lfsWorld is an httpWorld (HTTPS, objects up to 1 MiB) with git-lfs set
// up for its HTTP clients, a reader of acme/priv and an outsider, and a
// token for each, alice's read-only one too.
type lfsWorld struct {
	*httpWorld
	alice, reader, outsider, readOnly string // tokens
	elsewhere                         string // alice's token for acme/pub alone
	oid                               string // of the object the first push stores
}

func newLFSWorld(t *testing.T) *lfsWorld {
	if _, err := exec.LookPath("git-lfs"); err != nil {
		t.Fatalf("git-lfs is not installed (make deps installs it): %v", err)
	}
	h := newHTTPWorld(t, true, "--lfs-max-object-size", "1MiB")
	for _, u := range []string{"reader", "outsider"} {
		h.w.MustAdmin("user", "add", u)
	}
	h.w.MustAdmin("repo", "grant", "acme/priv", "reader", "read")
	l := &lfsWorld{httpWorld: h,
		alice:     newToken(t, h, "alice", "--name", "laptop"),
		reader:    newToken(t, h, "reader", "--name", "laptop"),
		outsider:  newToken(t, h, "outsider", "--name", "laptop"),
		readOnly:  newToken(t, h, "alice", "--name", "ci", "--read-only"),
		elsewhere: newToken(t, h, "alice", "--name", "pub", "--repo", "acme/pub"),
	}
	h.mustGit("", nil, "lfs", "install", "--skip-repo") // into the clients' HOME
	return l
}

// newToken creates a token and returns it (the last line of stdout).
func newToken(t *testing.T, h *httpWorld, args ...string) string {
	t.Helper()
	out := strings.Fields(h.w.MustAdmin(append([]string{"token", "create"}, args...)...))
	if len(out) == 0 || !strings.HasPrefix(out[len(out)-1], "cpm_") {
		t.Fatalf("token create %v: %q", args, out)
	}
	return out[len(out)-1]
}

// addLFSFile writes n random bytes to name in the clone dir, tracked by
// LFS, commits it, and returns the content's object id.
func (l *lfsWorld) addLFSFile(dir string, env []string, name string, n int) string {
	l.t.Helper()
	body := make([]byte, n)
	rand.Read(body)
	if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.mustGit(dir, env, "lfs", "track", "*.bin")
	l.mustGit(dir, env, "add", ".gitattributes", name)
	l.mustGit(dir, env, "commit", "-q", "-m", "add "+name)
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// stored is the path of an object in acme/priv's LFS store.
func (l *lfsWorld) stored(oid string) string {
	return filepath.Join(l.w.RepoDir("acme", "priv"), "lfs", "objects", oid[:2], oid[2:4], oid)
}

// api sends one request of the LFS API with a token ("" for none) and
// returns the status and the body.
func (l *lfsWorld) api(method, path, tok string, body []byte) (int, string) {
	l.t.Helper()
	req, err := http.NewRequest(method, l.url(path), bytes.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.git-lfs+json")
	req.Header.Set("Content-Type", "application/vnd.git-lfs+json")
	if tok != "" {
		req.SetBasicAuth("any", tok)
	}
	res, err := l.client().Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func batchBody(op, oid string, size int) []byte {
	return []byte(fmt.Sprintf(`{"operation":%q,"transfers":["basic"],"objects":[{"oid":%q,"size":%d}]}`, op, oid, size))
}

// TestHTTPLFS: git-lfs 3 over HTTPS with tokens (push, clone, locks),
// git-lfs through an ssh remote with lfs.sshtransfer=never
// (git-lfs-authenticate, then HTTPS), and the API's refusals.
func TestHTTPLFS(t *testing.T) {
	l := newLFSWorld(t)
	t.Run("push and clone over HTTPS", l.pushAndClone)
	t.Run("a push to a public repository gets its credentials", l.publicPush)
	t.Run("locks over HTTPS", l.locks)
	t.Run("ssh remote with lfs.sshtransfer=never", l.sshRemote)
	t.Run("a read-only token may not upload", l.readOnlyUpload)
	t.Run("an unreadable repository, or one outside the token's scope, answers like a missing one", l.unreadable)
	t.Run("content that does not match its id leaves nothing", l.corruptUpload)
	t.Run("an oversize upload is refused", l.oversizeUpload)
}

func (l *lfsWorld) pushAndClone(t *testing.T) {
	dir := filepath.Join(l.w.Root, "https-alice")
	l.mustGit("", withToken(l.alice), "clone", "-q", l.url("acme/priv.git"), dir)
	l.oid = l.addLFSFile(dir, withToken(l.alice), "asset.bin", 300_000)
	l.mustGit(dir, withToken(l.alice), "push", "-q", "origin", "main")
	if fi, err := os.Stat(l.stored(l.oid)); err != nil || fi.Size() != 300_000 {
		t.Fatalf("object not stored: %v", err)
	}
	rdir := filepath.Join(l.w.Root, "https-reader")
	l.mustGit("", withToken(l.reader), "clone", "-q", l.url("acme/priv.git"), rdir)
	want, _ := os.ReadFile(filepath.Join(dir, "asset.bin"))
	if got, _ := os.ReadFile(filepath.Join(rdir, "asset.bin")); !bytes.Equal(got, want) {
		t.Fatalf("smudged file differs: %d bytes, want %d", len(got), len(want))
	}
}

// publicPush: git-lfs asks a public repository's API anonymously first;
// the upload answers 401, and git-lfs asks git's credential helper.
func (l *lfsWorld) publicPush(t *testing.T) {
	dir := filepath.Join(l.w.Root, "https-pub")
	l.mustGit("", nil, "clone", "-q", l.url("acme/pub.git"), dir)
	oid := l.addLFSFile(dir, nil, "pub.bin", 1000)
	l.mustGit(dir, withToken(l.alice), "push", "-q", "origin", "main")
	if _, err := os.Stat(filepath.Join(l.w.RepoDir("acme", "pub"), "lfs", "objects", oid[:2], oid[2:4], oid)); err != nil {
		t.Fatalf("object not stored: %v", err)
	}
}

func (l *lfsWorld) locks(t *testing.T) {
	dir := filepath.Join(l.w.Root, "https-alice")
	env := withToken(l.alice)
	if out := l.mustGit(dir, env, "lfs", "lock", "asset.bin"); !strings.Contains(out, "Locked asset.bin") {
		t.Fatalf("lock: %q", out)
	}
	if out := l.mustGit(dir, env, "lfs", "locks"); !strings.Contains(out, "asset.bin") || !strings.Contains(out, "alice") {
		t.Fatalf("locks: %q", out)
	}
	rdir := filepath.Join(l.w.Root, "https-reader")
	if out := l.mustGit(rdir, withToken(l.reader), "lfs", "locks"); !strings.Contains(out, "asset.bin") {
		t.Fatalf("a reader's list: %q", out)
	}
	if r := l.git(rdir, withToken(l.reader), "lfs", "lock", "other.bin"); r.Code == 0 {
		t.Fatalf("a reader locked: %s", r.Stdout)
	}
	l.mustGit(dir, env, "lfs", "unlock", "asset.bin")
	if out := l.mustGit(dir, env, "lfs", "locks"); strings.Contains(out, "asset.bin") {
		t.Fatalf("still locked: %q", out)
	}
	var audit []struct {
		Actor, Action string
		Details       map[string]any
	}
	json.Unmarshal([]byte(l.w.MustAdmin("audit", "--limit", "20", "--json")), &audit)
	seen := map[string]bool{}
	for _, a := range audit {
		if a.Actor == "alice" && a.Details["transport"] == "http" {
			seen[a.Action] = true
		}
	}
	if !seen["lfs.lock"] || !seen["lfs.unlock"] {
		t.Fatalf("audit rows of the lock and unlock over HTTP: %+v", audit)
	}
}

func (l *lfsWorld) sshRemote(t *testing.T) {
	env := []string{"GIT_CONFIG_GLOBAL=" + filepath.Join(l.home, ".gitconfig"), "GIT_SSL_CAINFO=" + l.ca}
	ssh := l.sshWithoutTransfer()
	git := func(dir string, args ...string) {
		t.Helper()
		if r := l.httpWorld.alice.GitVia(ssh, env, dir, append([]string{"-c", "lfs.sshtransfer=never"}, args...)...); r.Code != 0 {
			t.Fatalf("git %v: %d\n%s", args, r.Code, r.Stderr)
		}
	}
	before := l.httpRequests("download", 0)
	dir := filepath.Join(l.w.Root, "ssh-alice")
	git(l.w.Root, "clone", "-q", l.httpWorld.alice.URL("acme/priv"), dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "asset.bin")); len(b) != 300_000 {
		t.Fatalf("clone over ssh did not smudge over HTTPS: %d bytes", len(b))
	}
	if !l.waitLogged(func() bool { return l.httpRequests("download", 0) > before }) {
		t.Fatalf("no LFS download over HTTP in the log:\n%s", l.srv.Log())
	}
	body := make([]byte, 2000)
	rand.Read(body)
	os.WriteFile(filepath.Join(dir, "second.bin"), body, 0o644)
	git(dir, "add", "second.bin")
	git(dir, "commit", "-q", "-m", "second")
	before = l.httpRequests("upload", 1)
	git(dir, "push", "-q", "origin", "main")
	sum := sha256.Sum256(body)
	if _, err := os.Stat(l.stored(hex.EncodeToString(sum[:]))); err != nil {
		t.Fatalf("object not stored: %v", err)
	}
	if !l.waitLogged(func() bool { return l.httpRequests("upload", 1) > before }) {
		t.Fatalf("no LFS upload over HTTP in the log:\n%s", l.srv.Log())
	}
}

func (l *lfsWorld) readOnlyUpload(t *testing.T) {
	code, body := l.api("POST", "acme/priv.git/info/lfs/objects/batch", l.readOnly, batchBody("upload", strings.Repeat("a", 64), 5))
	if code != http.StatusForbidden || !strings.Contains(body, "cpm: ") {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := l.api("PUT", "acme/priv.git/info/lfs/objects/"+strings.Repeat("a", 64), l.readOnly, []byte("12345")); code != http.StatusForbidden {
		t.Fatalf("put: %d", code)
	}
}

func (l *lfsWorld) unreadable(t *testing.T) {
	// Anonymous: 401, asking for credentials. With a valid token: 404,
	// never 401, which would make git-lfs erase the token from git's
	// credential helper. Either way a hidden repository answers as a
	// missing one.
	for _, tok := range []string{l.outsider, l.elsewhere, ""} {
		want := http.StatusNotFound
		if tok == "" {
			want = http.StatusUnauthorized
		}
		code, body := l.api("POST", "acme/priv.git/info/lfs/objects/batch", tok, batchBody("download", l.oid, 300_000))
		mcode, mbody := l.api("POST", "acme/nope.git/info/lfs/objects/batch", tok, batchBody("download", l.oid, 300_000))
		if code != want || code != mcode || strings.ReplaceAll(body, "priv", "X") != strings.ReplaceAll(mbody, "nope", "X") {
			t.Fatalf("%d %s / %d %s", code, body, mcode, mbody)
		}
		if code, _ := l.api("GET", "acme/priv.git/info/lfs/objects/"+l.oid, tok, nil); code != want {
			t.Fatalf("download: %d", code)
		}
	}
}

func (l *lfsWorld) corruptUpload(t *testing.T) {
	fake := sha256.Sum256([]byte("something else"))
	id := hex.EncodeToString(fake[:])
	code, body := l.api("PUT", "acme/priv.git/info/lfs/objects/"+id, l.alice, []byte("not that"))
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("%d %s", code, body)
	}
	if _, err := os.Stat(l.stored(id)); err == nil {
		t.Fatal("a corrupt upload was kept")
	}
	if left, _ := os.ReadDir(filepath.Join(l.w.RepoDir("acme", "priv"), "lfs", "tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func (l *lfsWorld) oversizeUpload(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	sum := sha256.Sum256(big)
	id := hex.EncodeToString(sum[:])
	code, body := l.api("POST", "acme/priv.git/info/lfs/objects/batch", l.alice, batchBody("upload", id, len(big)))
	if code != http.StatusOK || !strings.Contains(body, `"code":422`) || !strings.Contains(body, "lfs_max_object_size") {
		t.Fatalf("batch: %d %s", code, body)
	}
	if code, body := l.api("PUT", "acme/priv.git/info/lfs/objects/"+id, l.alice, big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("put: %d %s", code, body)
	}
	if _, err := os.Stat(l.stored(id)); err == nil {
		t.Fatal("an oversize upload was kept")
	}
}

// sshWithoutTransfer is alice's ssh command with git-lfs-transfer taken
// away: git-lfs 3.3 (Debian's) has no lfs.sshtransfer, and when its pure
// ssh protocol fails it takes the path lfs.sshtransfer=never names in
// later versions: git-lfs-authenticate, then the HTTP API.
func (l *lfsWorld) sshWithoutTransfer() string {
	l.t.Helper()
	script := filepath.Join(l.w.Root, "ssh-no-lfs-transfer")
	body := "#!/bin/sh\nfor a; do case \"$a\" in *git-lfs-transfer*) echo 'no git-lfs-transfer here' >&2; exit 1;; esac; done\nexec ssh \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return script + " " + strings.Join(l.httpWorld.alice.SSHArgs(), " ")
}

// httpRequests counts the LFS requests of alice's that the server logged
// as served over HTTP for operation, with at least up objects uploaded.
func (l *lfsWorld) httpRequests(operation string, up int) int {
	n := 0
	for _, line := range strings.Split(l.srv.Log(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] == "lfs" && ev["transport"] == "http" &&
			ev["operation"] == operation && ev["user"] == "alice" && ev["objects_up"].(float64) >= float64(up) {
			n++
		}
	}
	return n
}

// waitLogged waits a few seconds for the server's log to satisfy ok: a
// request's event is written as it ends.
func (l *lfsWorld) waitLogged(ok func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
