// Package merge merges one branch of a bare repository into another on
// the server, without a worktree: a fast-forward when the target is an
// ancestor of the source, otherwise a merge commit built with
// `git merge-tree --write-tree` and `git commit-tree`. Planning changes
// nothing; the target moves only in Apply, and only if nobody moved it in
// between.
package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"cpm/internal/repos"
)

// Kind is what a merge does to the target.
type Kind string

const (
	UpToDate    Kind = "up-to-date"   // the source is already in the target
	FastForward Kind = "fast-forward" // the target moves to the source
	Commit      Kind = "merge"        // a new merge commit on the target
)

// Plan is a computed merge.
type Plan struct {
	Kind             Kind
	Source, Target   string // full ref names
	Old, New, Merged string // target before and after; the source's commit
}

// ConflictError lists the paths that conflict; nothing was changed.
type ConflictError struct{ Paths []string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("merge conflict in %d paths: %s", len(e.Paths), strings.Join(e.Paths, ", "))
}

// ErrMoved means the target changed between Plan and Apply.
var ErrMoved = errors.New("the target branch moved during the merge; try again")

// Committer signs merge commits.
type Committer struct{ Name, Email string }

// Make plans merging branch source into branch target of the bare
// repository at dir. Both are full ref names (refs/heads/…) and must
// exist.
func Make(ctx context.Context, dir, source, target string, who Committer) (Plan, error) {
	p := Plan{Source: source, Target: target}
	var err error
	if p.Merged, err = commitOf(ctx, dir, source); err != nil {
		return p, err
	}
	if p.Old, err = commitOf(ctx, dir, target); err != nil {
		return p, err
	}
	// A failure to find out is an error, not "no": it must not turn a
	// fast-forward into a merge commit.
	in, err := repos.IsAncestor(ctx, dir, nil, p.Merged, p.Old)
	if err != nil {
		return p, err
	}
	if in {
		p.Kind, p.New = UpToDate, p.Old
		return p, nil
	}
	ff, err := repos.IsAncestor(ctx, dir, nil, p.Old, p.Merged)
	if err != nil {
		return p, err
	}
	if ff {
		p.Kind, p.New = FastForward, p.Merged
		return p, nil
	}
	tree, conflicts, err := mergeTree(ctx, dir, p.Old, p.Merged)
	if err != nil {
		return p, err
	}
	if len(conflicts) > 0 {
		return p, &ConflictError{Paths: conflicts}
	}
	msg := fmt.Sprintf("Merge branch '%s' into %s", short(source), short(target))
	out, err := git(ctx, dir, who.env(), "commit-tree", tree, "-p", p.Old, "-p", p.Merged, "-m", msg)
	if err != nil {
		return p, err
	}
	p.Kind, p.New = Commit, strings.TrimSpace(string(out))
	return p, nil
}

// Apply moves the target to the planned commit, atomically, provided it
// still points where the plan found it.
func Apply(ctx context.Context, dir string, p Plan, reason string) error {
	if p.Kind == UpToDate {
		return nil
	}
	if _, err := git(ctx, dir, nil, "update-ref", "-m", reason, p.Target, p.New, p.Old); err != nil {
		if cur, cerr := commitOf(ctx, dir, p.Target); cerr == nil && cur != p.Old {
			return ErrMoved
		}
		return err
	}
	return nil
}

func short(ref string) string { return strings.TrimPrefix(ref, "refs/heads/") }

func (c Committer) env() []string {
	return []string{
		"GIT_AUTHOR_NAME=" + c.Name, "GIT_AUTHOR_EMAIL=" + c.Email,
		"GIT_COMMITTER_NAME=" + c.Name, "GIT_COMMITTER_EMAIL=" + c.Email,
	}
}

// commitOf resolves a branch to its commit; a missing branch is an error
// that names it.
func commitOf(ctx context.Context, dir, ref string) (string, error) {
	out, err := git(ctx, dir, nil, "rev-parse", "--verify", "-q", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("no branch %s", short(ref))
	}
	return strings.TrimSpace(string(out)), nil
}

// mergeTree writes the merged tree, or lists the conflicting paths.
func mergeTree(ctx context.Context, dir, ours, theirs string) (string, []string, error) {
	cmd := exec.CommandContext(ctx, "git", "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs)
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	conflicted := errors.As(err, &ee) && ee.ExitCode() == 1
	if err != nil && !conflicted {
		return "", nil, fmt.Errorf("git merge-tree: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	fields := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if !conflicted {
		return fields[0], nil, nil
	}
	var paths []string
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		if f != "" && !seen[f] {
			seen[f] = true
			paths = append(paths, f)
		}
	}
	return fields[0], paths, nil
}

func git(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	return repos.GitOutput(ctx, dir, env, args...)
}
