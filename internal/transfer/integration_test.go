package transfer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// The prune pass and its guard, with a target reached through a fake ssh
// that runs commands locally: the logic under test is what cpm ships and
// deletes, not ssh (the test/ suite covers real sshd).
func TestPruneTarget(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	os.MkdirAll(bin, 0o755)
	// "ssh [options] [user@]host command...": skip the options and the host,
	// run the command here.
	fake := "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in -[oiplF]) shift 2;; -*) shift;; *) shift; break;; esac; done\nexec sh -c \"$*\"\n"
	os.WriteFile(filepath.Join(bin, "ssh"), []byte(fake), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	r := repos.Root{Dir: filepath.Join(root, "repos"), Trash: filepath.Join(root, "trash")}
	ctx := context.Background()
	src, err := r.Create(ctx, "acme", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "work")
	git := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	git(work, "init", "-q", "-b", "main")
	for _, m := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(work, m), []byte(m), 0o644)
		git(work, "add", m)
		git(work, "commit", "-q", "-m", m)
		git(work, "push", "-q", src, "HEAD:main")
	}
	s := &Syncer{Root: r, Remote: remote.Env{Key: "/dev/null", KnownHosts: "/dev/null"}, TempDir: root, LockDir: filepath.Join(root, "locks")}
	target := remote.Target{Name: "t", Host: "localhost", Port: 22, User: "u", Path: filepath.Join(root, "replicas")}
	repo := names.RepoPath{Org: "acme", Repo: "web"}
	if _, err := s.Sync(ctx, repo, target, true); err != nil {
		t.Fatal(err)
	}
	replica := filepath.Join(target.Path, "acme", "web.git")
	count := func(dir string) int {
		n := 0
		filepath.Walk(filepath.Join(dir, "objects"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	// A repack at the source leaves the loose objects stale on the replica.
	if _, err := s.Repack(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, repo, target, false); err != nil {
		t.Fatal(err)
	}
	before := count(replica)
	// A replica that is behind is never pruned.
	os.WriteFile(filepath.Join(work, "d"), []byte("d"), 0o644)
	git(work, "add", "d")
	git(work, "commit", "-q", "-m", "d")
	git(work, "push", "-q", src, "HEAD:main")
	if _, err := s.PruneTarget(ctx, repo, target); err != ErrNotCurrent {
		t.Fatalf("prune of a stale replica: %v", err)
	}
	if _, err := s.Sync(ctx, repo, target, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneTarget(ctx, repo, target); err != nil {
		t.Fatal(err)
	}
	if after, want := count(replica), count(src); after != want || after >= before {
		t.Errorf("replica has %d object files after pruning (before %d), source %d", after, before, want)
	}
	if out, err := exec.Command("git", "-C", replica, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Errorf("fsck after prune: %v %s", err, out)
	}
	// Maintenance runs git only where something changed since the last
	// one, and says when a push came in between and what it removed.
	if res, err := s.Repack(ctx, repo); err != nil || res.Unchanged || !res.Pushed || res.Removed == 0 {
		t.Errorf("repack after a push: %+v %v", res, err)
	}
	if res, err := s.Repack(ctx, repo); err != nil || !res.Unchanged {
		t.Errorf("repack of an unchanged repository: %+v %v", res, err)
	}
	git(work, "tag", "v1")
	git(work, "push", "-q", src, "v1")
	if res, err := s.Repack(ctx, repo); err != nil || res.Unchanged || !res.Pushed {
		t.Errorf("repack after a new tag: %+v %v", res, err)
	}
}
