package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// lfsClient runs git with git-lfs set up: its filters in a global config
// of the client's own (the test world points git at /dev/null otherwise).
type lfsClient struct {
	*testworld.Client
	t   *testing.T
	cfg string
}

func newLFSClient(t *testing.T, c *testworld.Client) *lfsClient {
	t.Helper()
	needCommand(t, "git-lfs")
	l := &lfsClient{Client: c, t: t, cfg: filepath.Join(t.TempDir(), "gitconfig")}
	if r := l.git("", "lfs", "install", "--skip-repo"); r.Code != 0 {
		t.Fatalf("git lfs install: %s", r.Stderr)
	}
	return l
}

func (l *lfsClient) git(dir string, args ...string) testworld.Result {
	l.t.Helper()
	if dir == "" {
		dir = l.t.TempDir()
	}
	return l.GitVia("ssh "+strings.Join(l.SSHArgs(), " "), []string{"GIT_CONFIG_GLOBAL=" + l.cfg}, dir, args...)
}

func (l *lfsClient) mustGit(dir string, args ...string) string {
	l.t.Helper()
	r := l.git(dir, args...)
	if r.Code != 0 {
		l.t.Fatalf("git %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// clone clones repo with LFS content smudged into the work tree.
func (l *lfsClient) clone(repo string) (string, testworld.Result) {
	l.t.Helper()
	dst := filepath.Join(l.t.TempDir(), "clone")
	r := l.git("", "clone", "-q", l.URL(repo), dst)
	return dst, r
}

// addLFSFile writes n random bytes to name, tracked by LFS, commits it
// and returns the object id.
func (l *lfsClient) addLFSFile(dir, name string, n int) string {
	l.t.Helper()
	body := make([]byte, n)
	rand.Read(body)
	if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.mustGit(dir, "lfs", "track", "*.bin")
	l.mustGit(dir, "add", ".gitattributes", name)
	l.mustGit(dir, "commit", "-q", "-m", "add "+name)
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func lfsObject(repoDir, oid string) string {
	return filepath.Join(repoDir, "lfs", "objects", oid[:2], oid[2:4], oid)
}

// TestLFS: track, push, clone with smudge, fetch, refusals and locks with
// the real git-lfs client, through the embedded server and through
// OpenSSH's forced command.
func TestLFS(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartSSHD()
	for name, mode := range map[string]func(string) *testworld.Client{
		"embedded": func(u string) *testworld.Client { return c.clients[u] },
		"openssh":  func(u string) *testworld.Client { return d.Client(c.keys[u]) },
	} {
		t.Run(name, func(t *testing.T) { lfsRoundTrip(t, c, mode) })
	}
}

func lfsRoundTrip(t *testing.T, c *company, client func(string) *testworld.Client) {
	writer, reader := newLFSClient(t, client("writer")), newLFSClient(t, client("reader"))
	dir, r := writer.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("clone: %s", r.Stderr)
	}
	name := fmt.Sprintf("asset-%d.bin", time.Now().UnixNano())
	oid := writer.addLFSFile(dir, name, 300_000)
	push := writer.git(dir, "push", "-q", "origin", "HEAD:main")
	if push.Code != 0 || strings.Contains(push.Stderr, "authenticate") {
		t.Fatalf("push: %d %s", push.Code, push.Stderr)
	}
	stored := lfsObject(c.w.RepoDir("acme", "web"), oid)
	if fi, err := os.Stat(stored); err != nil || fi.Size() != 300_000 {
		t.Fatalf("object not stored by content: %v", err)
	}

	// A reader's clone smudges the content; git lfs fetch works too.
	rdir, r := reader.clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("reader clone: %s", r.Stderr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, name))
	if got, _ := os.ReadFile(filepath.Join(rdir, name)); !bytes.Equal(got, want) {
		t.Fatalf("smudged file differs (%d bytes, want %d)", len(got), len(want))
	}
	reader.mustGit(rdir, "lfs", "fetch", "--all")

	// A reader's upload is refused, and nothing is stored.
	roid := reader.addLFSFile(rdir, "reader.bin", 1000)
	if r := reader.git(rdir, "push", "-q", "origin", "HEAD:main"); r.Code == 0 {
		t.Fatalf("a reader pushed LFS objects: %s", r.Stderr)
	}
	if _, err := os.Stat(lfsObject(c.w.RepoDir("acme", "web"), roid)); err == nil {
		t.Fatal("a reader's object was stored")
	}
	// Someone who may not read it finds no repository.
	stranger := newLFSClient(t, client("stranger"))
	if _, r := stranger.clone("acme/web"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Fatalf("stranger: %d %s", r.Code, r.Stderr)
	}

	// Locks: push access takes one; only its owner or an admin removes it.
	writer.mustGit(dir, "lfs", "lock", name)
	if out := writer.mustGit(dir, "lfs", "locks"); !strings.Contains(out, name) || !strings.Contains(out, "writer") {
		t.Fatalf("locks: %s", out)
	}
	if r := reader.git(rdir, "lfs", "lock", "reader.bin"); r.Code == 0 || !strings.Contains(r.Stderr, "permission denied") {
		t.Fatalf("a reader took a lock: %s", r.Stdout)
	}
	drw := newLFSClient(t, client("drw"))
	ddir, _ := drw.clone("acme/web")
	if r := drw.git(ddir, "lfs", "unlock", "--force", name); r.Code == 0 || !strings.Contains(r.Stderr, "only they or a repository admin") {
		t.Fatalf("someone else's lock removed without admin: %s", r.Stdout)
	}
	radmin := newLFSClient(t, client("radmin"))
	adir, _ := radmin.clone("acme/web")
	radmin.mustGit(adir, "lfs", "unlock", "--force", name)
	if out := writer.mustGit(dir, "lfs", "locks"); strings.Contains(out, name) {
		t.Fatalf("lock still there: %s", out)
	}
}

// pkt is one pkt-line; "" is a flush, "\x01" a delimiter.
func pkt(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		switch l {
		case "":
			b.WriteString("0000")
		case "\x01":
			b.WriteString("0001")
		default:
			fmt.Fprintf(&b, "%04x%s", len(l)+4, l)
		}
	}
	return b.String()
}

// TestLFSProtocolRefusals drives git-lfs-transfer by hand: a corrupt
// upload, an upload in a download session, unknown verbs, an object over
// the size limit, and the HTTP credential helper.
func TestLFSProtocolRefusals(t *testing.T) {
	c := newCompany(t, "--lfs-max-object-size", "1KiB")
	writer := c.clients["writer"]
	body := strings.Repeat("x", 100)
	sum := sha256.Sum256([]byte(body))
	oid := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)
	hello := pkt("version 1\n", "")
	tests := []struct {
		name, op, input string
		want            []string // in stdout, in order
	}{
		{"corrupt upload", "upload", hello + pkt("put-object "+wrong+"\n", "size=100\n", "\x01", body, "") + pkt("quit\n", ""),
			[]string{"status 200", "status 400", "content hashes to " + oid, "status 200"}},
		{"short upload", "upload", hello + pkt("put-object "+oid+"\n", "size=200\n", "\x01", body, "") + pkt("quit\n", ""),
			[]string{"status 400", "got 100 bytes, want 200"}},
		{"over the size limit", "upload", hello + pkt("batch\n", "\x01", oid+" 5000\n", ""),
			[]string{"status 413", "over this server's limit of 1024"}},
		{"upload in a download session", "download", hello + pkt("put-object "+oid+"\n", "size=100\n", "\x01", body, ""),
			[]string{"status 403", "put-object belongs to an upload session"}},
		{"unknown verb", "download", hello + pkt("frobnicate all\n", "") + pkt("quit\n", ""),
			[]string{"status 400", "unknown command", "status 200"}},
		{"unknown version", "download", pkt("version 2\n", ""), []string{"status 400", "unknown version"}},
		{"verb without argument", "download", hello + pkt("get-object\n", "") + pkt("quit\n", ""),
			[]string{"status 404", "status 200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := writer.SSHInput(tt.input, nil, "git-lfs-transfer acme/web "+tt.op)
			at := 0
			for _, w := range tt.want {
				i := strings.Index(r.Stdout[at:], w)
				if i < 0 {
					t.Fatalf("no %q after offset %d in %q (stderr %q)", w, at, r.Stdout, r.Stderr)
				}
				at += i + len(w)
			}
		})
	}
	for _, o := range []string{oid, wrong} {
		if _, err := os.Stat(lfsObject(c.w.RepoDir("acme", "web"), o)); err == nil {
			t.Errorf("object %s stored", o)
		}
	}
	if r := writer.SSH(nil, "git-lfs-authenticate acme/web download"); r.Code == 0 || !strings.Contains(r.Stderr, "git-lfs-transfer") {
		t.Errorf("git-lfs-authenticate: %d %q", r.Code, r.Stderr)
	}
	if r := writer.SSH(nil, "git-lfs-transfer acme/web lock"); r.Code == 0 || !strings.Contains(r.Stderr, "unknown operation") {
		t.Errorf("unknown operation: %d %q", r.Code, r.Stderr)
	}
}

// TestLFSReplicates: LFS objects travel with the repository to a backup,
// sync verify covers them (a lost or damaged one is found and repaired),
// and a neighbour serves downloads of its replica with the origin's
// permissions.
func TestLFSReplicates(t *testing.T) {
	t.Run("backup", func(t *testing.T) {
		c := newCompany(t)
		_, path := backup(t, c.w, "b1")
		replica := filepath.Join(path, "acme", "web.git")
		writer := newLFSClient(t, c.clients["writer"])
		dir, _ := writer.clone("acme/web")
		oid := writer.addLFSFile(dir, "big.bin", 200_000)
		writer.mustGit(dir, "push", "-q", "origin", "HEAD:main")
		head := revParse(dir, "HEAD")
		waitFor(t, 30*time.Second, "the replica", func() bool { return revParse(replica, "main") == head })
		obj := lfsObject(replica, oid)
		if fi, err := os.Stat(obj); err != nil || fi.Size() != 200_000 {
			t.Fatalf("LFS object on the backup: %v", err)
		}
		if out := c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1", "--deep"); !strings.Contains(out, "no object files missing or damaged") {
			t.Fatalf("deep verify: %s", out)
		}
		for name, damage := range map[string]func(){
			"lost":    func() { os.Remove(obj) },
			"damaged": func() { os.Chmod(obj, 0o644); os.WriteFile(obj, bytes.Repeat([]byte("z"), 200_000), 0o644) },
		} {
			damage()
			r := c.w.Admin("", "sync", "verify", "acme/web", "--to", "b1", "--deep")
			if r.Code == 0 || !strings.Contains(r.Stderr, oid[:12]) {
				t.Errorf("%s LFS object not reported: %d %s %s", name, r.Code, r.Stdout, r.Stderr)
			}
			c.w.MustAdmin("sync", "verify", "acme/web", "--to", "b1", "--deep", "--repair")
			if got, _ := os.ReadFile(obj); sha256Hex(got) != oid {
				t.Errorf("%s LFS object not repaired", name)
			}
		}
		// doctor names an object a pointer refers to that is not stored.
		if out := c.w.MustAdmin("doctor"); !strings.Contains(out, "ok    lfs objects") {
			t.Errorf("doctor with every object stored:\n%s", out)
		}
		src := lfsObject(c.w.RepoDir("acme", "web"), oid)
		os.Rename(src, src+".away")
		doc := c.w.Admin("", "doctor")
		if doc.Code == 0 || !strings.Contains(doc.Stdout, "FAIL  lfs objects") || !strings.Contains(doc.Stdout, oid) {
			t.Errorf("doctor with an object missing (exit %d):\n%s", doc.Code, doc.Stdout)
		}
		os.Rename(src+".away", src)
	})
	t.Run("neighbour", func(t *testing.T) {
		n := newTwoNodes(t)
		n.approve(t)
		writer := newLFSClient(t, n.clients["writer"])
		dir, _ := writer.clone("acme/web")
		oid := writer.addLFSFile(dir, "big.bin", 150_000)
		writer.mustGit(dir, "push", "-q", "origin", "HEAD:main")
		head := revParse(dir, "HEAD")
		replica := n.b.RepoDir("acme", "web")
		waitFor(t, 30*time.Second, "the replica on B", func() bool {
			_, err := os.Stat(lfsObject(replica, oid))
			return revParse(replica, "main") == head && err == nil
		})
		// B serves the download to A's reader, as A would.
		reader := newLFSClient(t, n.clientsB["reader"])
		rdir, r := reader.clone("acme/web")
		if r.Code != 0 {
			t.Fatalf("clone from B: %s", r.Stderr)
		}
		want, _ := os.ReadFile(filepath.Join(dir, "big.bin"))
		if got, _ := os.ReadFile(filepath.Join(rdir, "big.bin")); !bytes.Equal(got, want) {
			t.Fatalf("file smudged from B differs (%d bytes)", len(got))
		}
		// Uploads and locks belong to the origin.
		if r := reader.git(rdir, "lfs", "lock", "big.bin"); r.Code == 0 {
			t.Fatalf("a lock on a replica: %s", r.Stdout)
		}
		stranger := newLFSClient(t, n.clientsB["stranger"])
		if _, r := stranger.clone("acme/web"); r.Code == 0 {
			t.Fatal("a stranger cloned from B")
		}
	})
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
