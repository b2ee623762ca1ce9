package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// ErrDiverged means the local repository has commits the source does not
// contain; pulling would lose them.
var ErrDiverged = errors.New("diverged")

// Pull copies ORG/REPO from its replica on t into the local repository:
// objects first (adding objects loses nothing), then, unless local refs
// hold commits the source does not contain (or force is set), the
// source's refs in one atomic ref transaction.
func (s *Syncer) Pull(ctx context.Context, repo names.RepoPath, t remote.Target, force bool) (Result, error) {
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	return s.PullLocked(ctx, dir, repo, t, force)
}

// PullLocked is Pull into dir, whose lock the caller holds.
func (s *Syncer) PullLocked(ctx context.Context, dir string, repo names.RepoPath, t remote.Target, force bool) (Result, error) {
	start := time.Now()
	head, refs, err := RemoteRefs(ctx, s.Remote, t, repo)
	if err != nil {
		return Result{}, err
	}
	theirs := map[string]string{}
	for _, l := range refs {
		if id, ref, ok := strings.Cut(l, " "); ok && strings.HasPrefix(ref, "refs/") {
			theirs[ref] = id
		}
	}
	var res Result
	for _, pass := range objectPasses() {
		r, err := s.fetch(ctx, t, repo, areaObjects, dir+"/objects/", pass...)
		if err != nil {
			return res, err
		}
		res.Bytes += r.Bytes
		res.Files += r.Files
	}
	r, err := s.fetchLFS(ctx, t, repo, dir)
	if err != nil {
		return res, err
	}
	res.Bytes += r.Bytes
	res.Files += r.Files
	ours, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return res, err
	}
	if lost := lostRefs(ctx, dir, ours, theirs); len(lost) > 0 && !force {
		return res, fmt.Errorf("%w: local %s not contained in the source; pull with --force to replace them", ErrDiverged, strings.Join(lost, ", "))
	}
	if err := replaceRefs(ctx, dir, ours, theirs); err != nil {
		return res, err
	}
	if target, ok := strings.CutPrefix(head, "ref: "); ok && strings.HasPrefix(target, "refs/heads/") {
		if _, err := gitOut(ctx, dir, "symbolic-ref", "HEAD", target); err != nil {
			return res, err
		}
	}
	after, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return res, err
	}
	res.Fingerprint = after.Fingerprint
	res.Duration = time.Since(start)
	return res, nil
}

// lostRefs are the local refs (sorted) whose commits the source's refs
// do not contain.
func lostRefs(ctx context.Context, dir string, ours Snapshot, theirs map[string]string) []string {
	var lost []string
	for _, line := range ours.Refs {
		id, ref, _ := strings.Cut(line, " ")
		their, ok := theirs[ref]
		if !ok {
			lost = append(lost, ref+" (not on the source)")
		} else if their != id && !isAncestor(ctx, dir, id, their) {
			lost = append(lost, ref)
		}
	}
	sort.Strings(lost)
	return lost
}

// replaceRefs makes the local refs the source's, in one atomic ref
// transaction.
func replaceRefs(ctx context.Context, dir string, ours Snapshot, theirs map[string]string) error {
	var tx strings.Builder
	tx.WriteString("start\n")
	for ref, id := range theirs {
		fmt.Fprintf(&tx, "update %s %s\n", ref, id)
	}
	for _, line := range ours.Refs {
		if _, ref, _ := strings.Cut(line, " "); theirs[ref] == "" {
			fmt.Fprintf(&tx, "delete %s\n", ref)
		}
	}
	tx.WriteString("prepare\ncommit\n")
	cmd := exec.CommandContext(ctx, "git", "update-ref", "--stdin")
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	cmd.Stdin = strings.NewReader(tx.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("update refs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fetchLFS copies the Git LFS objects of the replica on t, if it has
// any, into dir; none are replaced.
func (s *Syncer) fetchLFS(ctx context.Context, t remote.Target, repo names.RepoPath, dir string) (Result, error) {
	if err := os.MkdirAll(filepath.Join(dir, "lfs"), 0o755); err != nil {
		return Result{}, err
	}
	if t.Peer {
		return s.fetch(ctx, t, repo, areaLFS, dir+"/lfs/", append([]string{"--ignore-existing"}, lfsObjectsOnly()...)...)
	}
	// From the replica's top, so that one without LFS objects is no error.
	return s.fetch(ctx, t, repo, areaTop, dir+"/", "--ignore-existing", "--include=/lfs/", "--include=/lfs/objects/***", "--exclude=*")
}

func isAncestor(ctx context.Context, dir, old, new string) bool {
	cmd := exec.CommandContext(ctx, "git", "merge-base", "--is-ancestor", old, new)
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	return cmd.Run() == nil
}
