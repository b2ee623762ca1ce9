package repos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"

	"cpm/internal/printable"
)

// IsAncestor reports whether a is an ancestor of b in the repository at
// dir (b is then a fast-forward of a), with environment env (nil: Env(dir);
// a hook passes its own, so that a push's quarantined objects are seen).
// Only git's own "no", or an object that does not peel to a commit (a tag
// of a tree, say), means false; any other failure (no git, a cancelled
// context, a missing object) is an error, never an answer.
func IsAncestor(ctx context.Context, dir string, env []string, a, b string) (bool, error) {
	if env == nil {
		env = Env(dir)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", "merge-base", "--is-ancestor", a, b)
	cmd.Dir, cmd.Env, cmd.Stderr = dir, env, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("is %s an ancestor of %s: %w", a, b, ctx.Err())
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil
	}
	if notCommit(ctx, dir, env, a) || notCommit(ctx, dir, env, b) {
		return false, nil
	}
	return false, fmt.Errorf("git merge-base --is-ancestor %s %s: %w: %s", a, b, err, printable.Line(stderr.String()))
}

// notCommit reports whether id names an object, present, that does not
// peel to a commit.
func notCommit(ctx context.Context, dir string, env []string, id string) bool {
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir, cmd.Env = dir, env
		return cmd.Run()
	}
	if git("cat-file", "-e", id) != nil {
		return false
	}
	var ee *exec.ExitError
	err := git("rev-parse", "--verify", "-q", id+"^{commit}")
	return errors.As(err, &ee) && ee.ExitCode() == 1 && ctx.Err() == nil
}
