// Command cpm-hook runs inside git's receive hooks of every cpm
// repository: pre-receive enforces ref permissions and protected refs,
// post-receive records the push in the audit log, queues it for
// replication and wakes the workers; each then runs the repository's own
// hooks from HOOK.d/. git calls it through the hook scripts that cpm
// installs; people do not run it by hand.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"cpm/internal/access"
	"cpm/internal/datadir"
	"cpm/internal/hook"
	"cpm/internal/store"
)

type cli struct {
	DataDir     string   `name:"data-dir" env:"CPM_DATA_DIR" required:"" placeholder:"DIR" help:"Data directory."`
	PreReceive  struct{} `cmd:"" name:"pre-receive" help:"Check a push (git's pre-receive hook)."`
	PostReceive struct{} `cmd:"" name:"post-receive" help:"Record a push (git's post-receive hook)."`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c, kong.Name("cpm-hook"), kong.Writers(stdout, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", oneLine(err.Error()))
		return 2
	}
	ctx := context.Background()
	name := kctx.Command()
	if err := runHook(ctx, name, c.DataDir, stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", oneLine(err.Error()))
		if name == "post-receive" {
			// The push has happened; a failure here must not look like it did not.
			return 0
		}
		return 1
	}
	return 0
}

func runHook(ctx context.Context, name, dataDir string, stdin io.Reader, stdout, stderr io.Writer) error {
	dir, err := datadir.New(dataDir)
	if err != nil {
		return err
	}
	repoDir, err := os.Getwd() // git runs hooks in the repository
	if err != nil {
		return err
	}
	repo, err := hook.RepoFromDir(dir.Repos(), repoDir)
	if err != nil {
		return err
	}
	updates, raw, err := hook.ReadUpdates(stdin)
	if err != nil {
		return err
	}
	pusher, err := hook.PusherFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	database, err := dir.Database("")
	if err != nil {
		return err
	}
	st, err := store.OpenAt(ctx, database, dir.DB())
	if err != nil {
		if name == "post-receive" {
			hook.Enqueue(ctx, nil, dir, repo)
		}
		return err
	}
	defer st.Close()
	switch name {
	case "pre-receive":
		if err := hook.Check(ctx, access.New(st, nil), pusher, repo, updates, hook.GitAncestry(repoDir)); err != nil {
			return err
		}
		return hook.RunLocal(ctx, repoDir, name, nil, raw, stdout, stderr)
	default:
		recErr := hook.Record(ctx, st, pusher, repo, updates)
		hook.Enqueue(ctx, st, dir, repo)
		if err := hook.RunLocal(ctx, repoDir, name, nil, raw, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "cpm: %s\n", oneLine(err.Error()))
		}
		return recErr
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
