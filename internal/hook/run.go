package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"cpm/internal/access"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/queue"
	"cpm/internal/store"
)

// Run is cpm-hook: the hook name (pre-receive or post-receive) run in the
// repository that git runs it in (the working directory), with git's
// ref updates on stdin. pre-receive decides each update and then runs the
// repository's own hooks; post-receive records the push, queues it for
// replication (a marker without the database) and runs the repository's
// own hooks, whose failure it only reports: the push has happened.
func Run(ctx context.Context, name, dataDir string, stdin io.Reader, stdout, stderr io.Writer) error {
	dir, err := datadir.New(dataDir)
	if err != nil {
		return err
	}
	repoDir, err := os.Getwd() // git runs hooks in the repository
	if err != nil {
		return err
	}
	repo, err := RepoFromDir(dir.Repos(), repoDir)
	if err != nil {
		return err
	}
	updates, raw, err := ReadUpdates(stdin)
	if err != nil {
		return err
	}
	pusher, err := PusherFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	database, err := dir.Database("")
	if err != nil {
		return err
	}
	dbctx, cancel := withDatabaseDeadline(ctx)
	defer cancel()
	st, err := store.OpenAt(dbctx, database, dir.DB())
	if err != nil {
		if name == "post-receive" {
			queue.Enqueue(ctx, nil, dir, repo)
		}
		// git shows this to the pusher: not the database's address, user
		// or driver text; doctor tells the operator why.
		return errors.New("the database is unavailable (cpm-admin doctor says why); try again later")
	}
	defer st.Close()
	switch name {
	case "pre-receive":
		if err := CheckFence(dbctx, st, dir, repo, os.Getenv); err != nil {
			return err
		}
		// The ancestry checks are git's work, not the database's: they run
		// under ctx, without the database steps' deadline.
		ff := func(_ context.Context, old, new string) (bool, error) { return GitAncestry(repoDir)(ctx, old, new) }
		if err := check(dbctx, access.New(st, nil), pusher, repo, updates, ff); err != nil {
			return err
		}
		return RunLocal(ctx, repoDir, name, nil, raw, stdout, stderr)
	default:
		recErr := Record(dbctx, st, pusher, repo, updates)
		Replicate(ctx, st, dir, repo, os.Getenv, stderr)
		if err := RunLocal(ctx, repoDir, name, nil, raw, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "cpm: %s\n", printable.Line(err.Error()))
		}
		return recErr
	}
}

// check decides a push made through the gateway; a push made on the
// server itself is recorded but not restricted.
func check(ctx context.Context, c access.Checker, p Pusher, repo names.RepoPath, updates []Update, ff Ancestry) error {
	if p.Local {
		return nil
	}
	id, err := Identify(ctx, c, p)
	if err != nil {
		return err
	}
	return Check(ctx, c, id, repo, updates, ff)
}
