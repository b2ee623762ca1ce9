package replicate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
	"cpm/internal/transfer"
)

// TestPruneOwedSurvives: a repack that removed files while a replica was
// behind (its job pending) leaves that replica owed a prune; the next
// passes find the repository unchanged (the stamp) and still owe it,
// until it is current and its prune succeeds; a replica that is gone is
// owed nothing. (Before, the debt lived only in memory and only for
// replicas current at the repack: it was forgotten.)
func TestPruneOwedSurvives(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := repos.Root{Dir: filepath.Join(root, "repos"), Trash: filepath.Join(root, "trash")}
	src, err := r.Create(ctx, "acme", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "work")
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	os.MkdirAll(work, 0o755)
	git("init", "-q", "-b", "main")
	for _, m := range []string{"a", "b"} {
		os.WriteFile(filepath.Join(work, m), []byte(m), 0o644)
		git("add", m)
		git("commit", "-q", "-m", m)
		git("push", "-q", src, "HEAD:main")
	}
	syncer := &transfer.Syncer{Root: r, TempDir: root, LockDir: filepath.Join(root, "locks")}
	w := &Workers{Syncer: syncer, Log: zerolog.Nop()}
	repo := names.RepoPath{Org: "acme", Repo: "web"}
	owed := func() []string {
		t.Helper()
		got, err := syncer.PruneOwed(repo)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// The first maintenance: the loose objects go into a pack, and the
	// backup's job is pending.
	var n passCounts
	w.maintainRepo(ctx, repo, repoTargets{behind: []string{"backup"}}, &n)
	if n.repacked != 1 || !slices.Equal(owed(), []string{"backup"}) {
		t.Fatalf("after the repack: %+v, owed %q", n, owed())
	}
	// Current now, but its prune fails (no such host): still owed, in a
	// pass that finds the repository unchanged.
	unreachable := remote.Target{Name: "backup", Host: "127.0.0.1", Port: 1, User: "u", Path: filepath.Join(root, "nowhere")}
	n = passCounts{}
	w.maintainRepo(ctx, repo, repoTargets{current: []remote.Target{unreachable}}, &n)
	if n.unchanged != 1 || n.pruned != 0 || !slices.Equal(owed(), []string{"backup"}) {
		t.Fatalf("after a failed prune: %+v, owed %q", n, owed())
	}
	// The backup was removed: owed nothing, and the record goes.
	w.maintainRepo(ctx, repo, repoTargets{}, &n)
	if got := owed(); len(got) != 0 {
		t.Fatalf("owed to a removed backup: %q", got)
	}
	if _, err := os.Stat(filepath.Join(src, "cpm-prune-owed")); !os.IsNotExist(err) {
		t.Fatalf("the record stays: %v", err)
	}
}
