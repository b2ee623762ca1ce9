package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPartialAndShallowClones: blob-less and tree-less partial clones,
// their lazy fetches, and shallow clones, over ssh (protocol v2) and
// git://, with stock git.
func TestPartialAndShallowClones(t *testing.T) {
	c := newCompany(t)
	owner := c.clients["owner"]
	dir, _ := owner.Clone("acme/pub")
	for i := range 3 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("big%d.bin", i)), []byte(strings.Repeat(fmt.Sprint(i), 50000)), 0o644)
		owner.MustGit(dir, "add", ".")
		owner.MustGit(dir, "commit", "-q", "-m", fmt.Sprint("part ", i))
	}
	owner.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	head := revParse(dir, "HEAD")

	urls := map[string]string{
		"ssh":    owner.URL("acme/pub"),
		"git://": "git://" + c.srv.GitAddr + "/acme/pub.git",
	}
	for transport, url := range urls {
		for _, filter := range []string{"blob:none", "tree:0"} {
			t.Run(transport+" --filter="+filter, func(t *testing.T) {
				dst := filepath.Join(t.TempDir(), "c")
				r := owner.Git("", "-c", "protocol.version=2", "clone", "-q", "--no-checkout", "--filter="+filter, url, dst)
				if r.Code != 0 || strings.Contains(r.Stderr, "filtering not recognized") {
					t.Fatalf("partial clone: %d %s", r.Code, r.Stderr)
				}
				if got := strings.TrimSpace(owner.MustGit(dst, "config", "remote.origin.promisor")); got != "true" {
					t.Fatalf("not a partial clone (promisor %q)", got)
				}
				missing := owner.MustGit(dst, "rev-list", "--objects", "--missing=print", "HEAD")
				if !strings.Contains(missing, "?") {
					t.Fatalf("the filter left nothing out:\n%s", missing)
				}
				// The checkout fetches what it needs, lazily.
				owner.MustGit(dst, "checkout", "-q", "main")
				if b, err := os.ReadFile(filepath.Join(dst, "big2.bin")); err != nil || len(b) != 50000 {
					t.Fatalf("lazily fetched file: %v (%d bytes)", err, len(b))
				}
			})
		}
		t.Run(transport+" shallow", func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "s")
			owner.MustGit("", "clone", "-q", "--depth=1", url, dst)
			if n := owner.MustGit(dst, "rev-list", "--count", "HEAD"); n != "1" || revParse(dst, "HEAD") != head {
				t.Fatalf("shallow clone: %s commits, head %s", n, revParse(dst, "HEAD"))
			}
			owner.MustGit(dst, "fetch", "-q", "--deepen=1")
		})
	}
}

// TestMaintenanceWritesIndexes: maintenance leaves a multi-pack index
// with a bitmap, a commit-graph and packed refs, and a backup's replica
// receives them with git fsck clean.
func TestMaintenanceWritesIndexes(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	replica := filepath.Join(path, "acme", "web.git")
	cl := c.clients["writer"]
	dir, _ := cl.Clone("acme/web")
	for i := range 3 {
		cl.Commit(dir, fmt.Sprint("commit ", i))
		cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	}
	c.srv.Stop()
	c.srv = c.w.StartServer("--repack", "1s")
	src := c.w.RepoDir("acme", "web")
	want := []string{"objects/pack/multi-pack-index", "objects/info/commit-graphs/commit-graph-chain", "packed-refs"}
	waitFor(t, 30*time.Second, "maintenance to write the indexes", func() bool {
		for _, f := range want {
			if _, err := os.Stat(filepath.Join(src, f)); err != nil {
				return false
			}
		}
		bitmaps, _ := filepath.Glob(filepath.Join(src, "objects", "pack", "multi-pack-index-*.bitmap"))
		return len(bitmaps) > 0
	})
	cl = c.srv.Client(c.keys["writer"]) // the restarted server listens elsewhere
	commit := cl.Commit(dir, "after maintenance")
	cl.MustGit(dir, "push", "-q", cl.URL("acme/web"), "HEAD:main")
	waitFor(t, 30*time.Second, "the replica", func() bool { return revParse(replica, "main") == commit })
	waitFor(t, 30*time.Second, "the replica's multi-pack index", func() bool {
		_, err := os.Stat(filepath.Join(replica, "objects", "pack", "multi-pack-index"))
		return err == nil
	})
	if err := fsckClean(replica); err != nil {
		t.Errorf("replica with the indexes: %v", err)
	}
	if out, err := exec.Command("git", "-C", src, "rev-list", "--count", "--use-bitmap-index", "main").CombinedOutput(); err != nil {
		t.Errorf("bitmap walk on the source: %v %s", err, out)
	}
}
