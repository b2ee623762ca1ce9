// Command scalegen makes many repositories at once for bench/scale.sh:
// the rows through internal/store/storetest in one transaction, and on
// disk copies of one bare repository that cpm created (its settings and
// hooks) holding a small history in one pack, without a git process per
// repository. It runs on a data directory after cpm-admin init.
//
// With -replicas and -server it lays down instead the replicas of those
// repositories on a backup (copies of org1/repo1, every repository's
// twin) and records the server's jobs as synced, so that a benchmark
// measures reconciliation and maintenance at sizes whose initial
// replication would take hours.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store/storetest"
	"cpm/internal/transfer"
)

func main() {
	data := flag.String("data", "", "cpm data directory (initialised)")
	n := flag.Int("repos", 1000, "repositories to make: orgN/repoM, 100 per organisation")
	hook := flag.String("hook", "", "path of cpm-hook, for the repositories' hooks")
	replicas := flag.String("replicas", "", "lay the replicas down under this backup path instead")
	server := flag.String("server", "", "with -replicas: the backup's name, whose jobs are marked synced")
	maintained := flag.Bool("maintained", false, "repositories as cpm's maintenance left them (repacked, stamped), so that the next pass finds nothing changed")
	flag.Parse()
	var err error
	if *replicas != "" {
		err = seedReplicas(context.Background(), datadir.Dir(*data), *n, *replicas, *server)
	} else {
		err = run(context.Background(), datadir.Dir(*data), *n, *hook, *maintained)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scalegen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir datadir.Dir, n int, hook string, maintained bool) error {
	per := min(n, 100)
	if n <= 0 || n%per != 0 {
		return fmt.Errorf("-repos %d: want up to 100, or a multiple of 100", n)
	}
	orgs := n / per
	if _, err := storetest.Populate(ctx, dir.DB(), storetest.Size{Orgs: orgs, ReposPerOrg: per, Private: true}); err != nil {
		return fmt.Errorf("populate the store: %w", err)
	}
	tpl, err := template(ctx, dir, hook)
	if err != nil {
		return err
	}
	if maintained {
		root := repos.Root{Dir: filepath.Dir(filepath.Dir(tpl))}
		s := &transfer.Syncer{Root: root, LockDir: filepath.Join(filepath.Dir(root.Dir), "locks")}
		if _, err := s.Repack(ctx, names.RepoPath{Org: "tpl", Repo: "tpl"}); err != nil {
			return err
		}
	}
	defer os.RemoveAll(filepath.Dir(filepath.Dir(tpl)))
	return copyAll(tpl, dir.Repos(), orgs, per)
}

// seedReplicas copies org1/repo1 to every repository's place under
// path, and marks server's jobs synced with its fingerprint.
func seedReplicas(ctx context.Context, dir datadir.Dir, n int, path, server string) error {
	per := min(n, 100)
	tpl := filepath.Join(dir.Repos(), "org1", "repo1.git")
	snap, err := transfer.TakeSnapshot(ctx, tpl)
	if err != nil {
		return err
	}
	if err := copyAll(tpl, path, n/per, per); err != nil {
		return err
	}
	return storetest.MarkSynced(ctx, dir.DB(), server, snap.Fingerprint)
}

// copyAll copies tpl to root/orgO/repoR.git for orgs×per repositories,
// four at a time.
func copyAll(tpl, root string, orgs, per int) error {
	work := make(chan string)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for dst := range work {
				if err := copyRepo(tpl, dst); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var sendErr error
send:
	for o := 1; o <= orgs; o++ {
		for r := 1; r <= per; r++ {
			select {
			case work <- filepath.Join(root, fmt.Sprintf("org%d", o), fmt.Sprintf("repo%d.git", r)):
			case sendErr = <-errs:
				break send
			}
		}
	}
	close(work)
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// copyRepo copies the repository tpl to dst with its files' and
// folders' modification times, which maintenance's stamp records.
func copyRepo(tpl, dst string) error {
	if err := os.CopyFS(dst, os.DirFS(tpl)); err != nil {
		return err
	}
	var dirs []string
	err := filepath.WalkDir(tpl, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p) // after what they hold
			return nil
		}
		return keepTime(tpl, dst, p)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := keepTime(tpl, dst, dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func keepTime(tpl, dst, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(tpl, p)
	return os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
}

// template makes a repository as cpm-admin repo create would, with three
// commits of a few small files packed into one pack.
func template(ctx context.Context, dir datadir.Dir, hook string) (string, error) {
	if err := os.MkdirAll(dir.Tmp(), 0o700); err != nil {
		return "", err
	}
	scratch, err := os.MkdirTemp(dir.Tmp(), "scalegen-")
	if err != nil {
		return "", err
	}
	root := repos.Root{Dir: filepath.Join(scratch, "repos"), Trash: filepath.Join(scratch, "trash"), Hooks: repos.Hooks{Bin: hook, DataDir: dir.String()}}
	tpl, err := root.Create(ctx, "tpl", "tpl", "")
	if err != nil {
		return "", err
	}
	work := filepath.Join(scratch, "work")
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@x"}, args...)...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", err
	}
	if err := git("init", "-q", "-b", "main"); err != nil {
		return "", err
	}
	for i := range 3 {
		for f := range 5 {
			os.WriteFile(filepath.Join(work, fmt.Sprintf("f%d", f)), fmt.Appendf(nil, "commit %d file %d\n", i, f), 0o644)
		}
		if err := git("add", "."); err != nil {
			return "", err
		}
		if err := git("commit", "-q", "-m", fmt.Sprint("commit ", i)); err != nil {
			return "", err
		}
	}
	// A fetch into it, not a push: the repository's hooks would ask the
	// database about tpl/tpl.
	for _, args := range [][]string{{"fetch", "-q", work, "HEAD:refs/heads/main"}, {"repack", "-adq"}, {"pack-refs", "--all"}} {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", tpl}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v in the template: %v: %s", args, err, out)
		}
	}
	os.Remove(filepath.Join(tpl, "FETCH_HEAD"))
	return tpl, nil
}
