package transfer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A snapshot read from the ref files is git's, peeled tags included; where
// the files cannot tell whether a ref peels (a loose ref to a tag or to a
// packed object, a packed-refs without fully-peeled), git is asked.
func TestSnapshotFromFiles(t *testing.T) {
	dir := t.TempDir()
	git := func(stdin string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	git("", "init", "-q", "--bare", "-b", "main")
	blob := git("x", "hash-object", "-w", "--stdin")
	tree := git("100644 blob "+blob+"\tf\n", "mktree")
	commit := git("", "commit-tree", tree, "-m", "c")
	git("", "update-ref", "refs/heads/main", commit)
	git("", "update-ref", "refs/heads/other", commit)
	git("", "tag", "light", commit)
	same := func(want bool, what string) {
		t.Helper()
		got, ok := SnapshotFromFiles(dir)
		if ok != want {
			t.Fatalf("%s: settled %v, want %v", what, ok, want)
		}
		if !ok {
			return
		}
		snap, err := TakeSnapshot(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, snap) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, snap)
		}
	}
	same(true, "loose refs to loose commits")
	git("", "tag", "-a", "-m", "annotated", "v1", commit)
	same(false, "a loose ref to a tag object")
	git("", "pack-refs", "--all")
	same(true, "packed refs, fully peeled")
	os.WriteFile(filepath.Join(dir, "HEAD"), []byte(commit+"\n"), 0o644)
	same(true, "a detached HEAD")
	git("", "update-ref", "refs/heads/main", git("", "commit-tree", tree, "-p", commit, "-m", "d"))
	if _, err := os.Stat(filepath.Join(dir, "refs/heads/main")); err != nil {
		t.Fatal(err)
	}
	same(true, "a loose ref over a packed one")
	git("", "repack", "-a", "-d", "-q")
	git("", "prune-packed")
	same(false, "a loose ref to a packed object")
	os.Remove(filepath.Join(dir, "refs/heads/main"))
	packed, _ := os.ReadFile(filepath.Join(dir, "packed-refs"))
	os.WriteFile(filepath.Join(dir, "packed-refs"), []byte(strings.Replace(string(packed), " fully-peeled", "", 1)), 0o644)
	same(false, "a packed-refs without fully-peeled")
}
