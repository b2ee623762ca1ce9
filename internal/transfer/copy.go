package transfer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// copyJob is one repository's copy to one target: its objects from dir,
// then the ref snapshot in refsDir; with fresh, first the skeleton in
// skelDir that a new replica needs.
type copyJob struct {
	target                remote.Target
	repo                  names.RepoPath
	dir, refsDir, skelDir string
	fresh                 bool
	lfs                   bool // the repository has LFS objects to send
}

// A copier ships a copyJob to its target in the order that keeps the
// replica consistent for readers: data, then indexes, then refs. It
// also delivers single files to a backup (the database snapshot), so
// that whatever reaches the repositories reaches the metadata too.
type copier interface {
	copy(ctx context.Context, j copyJob) (Result, error)
	// deliver puts the local file at dir/name on backup t, whole or not
	// at all (readers find the previous file or this one), and returns
	// the bytes sent.
	deliver(ctx context.Context, t remote.Target, local, dir, name string) (int64, error)
}

// copierFor picks the strategy for t: rsync into a neighbour's daemon
// module, rsync over ssh to a backup, or tar over ssh to a backup known
// to have no rsync.
func (s *Syncer) copierFor(t remote.Target) copier {
	switch {
	case t.Peer:
		return rsyncCopier{s}
	case s.lacksRsync(t.Name):
		return tarCopier{s}
	}
	return rsyncCopier{s}
}

// fallBack reports whether err says that backup t has no rsync; it then
// marks t, whose copier is tar over ssh from now on.
func (s *Syncer) fallBack(t remote.Target, err error) bool {
	if t.Peer || !noRsync(err) {
		return false
	}
	s.markNoRsync(t.Name)
	return true
}

// rsyncStep is one rsync run of a copy: src into an area of the
// replica, with args.
type rsyncStep struct {
	src  string
	area area
	args []string
}

// rsyncSteps are the runs of a copy, in order: the skeleton of a fresh
// backup replica (never overwriting anything), the object data, the
// object indexes, the Git LFS objects (when there are any), and the
// refs, which replace the target's wholesale. A neighbour lays its
// replica's foundations itself (prepare).
func rsyncSteps(j copyJob) []rsyncStep {
	passes := objectPasses()
	var steps []rsyncStep
	if j.fresh && !j.target.Peer {
		steps = append(steps, rsyncStep{j.skelDir + "/", areaTop, []string{"--ignore-existing"}})
	}
	steps = append(steps,
		rsyncStep{j.dir + "/objects/", areaObjects, passes[0]},
		rsyncStep{j.dir + "/objects/", areaObjects, passes[1]})
	if j.lfs {
		// Named by their content: one there is never replaced.
		steps = append(steps, rsyncStep{j.dir + "/lfs/", areaLFS, append([]string{"--ignore-existing"}, lfsObjectsOnly()...)})
	}
	return append(steps, rsyncStep{j.refsDir + "/", areaTop, []string{"--checksum", "--delete-after",
		"--include=/HEAD", "--include=/packed-refs", "--include=/refs/***", "--exclude=*"}})
}

// lfsObjectsOnly keeps an rsync of a repository's lfs/ folder to the
// objects (no temporary uploads).
func lfsObjectsOnly() []string { return []string{"--include=/objects/***", "--exclude=*"} }

// hasLFS reports whether the repository at dir stores LFS objects.
func hasLFS(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "lfs", "objects"))
	return err == nil && fi.IsDir()
}

// rsyncCopier runs rsyncSteps: over ssh to a backup, or to the daemon
// module a neighbour sets up for the one replica.
type rsyncCopier struct{ s *Syncer }

func (c rsyncCopier) copy(ctx context.Context, j copyJob) (Result, error) {
	var res Result
	for _, st := range rsyncSteps(j) {
		r, err := c.s.push(ctx, j.target, j.repo, st.src, st.area, st.args...)
		if err != nil {
			return res, err
		}
		res.Bytes += r.Bytes
		res.Files += r.Files
	}
	return res, nil
}

// deliver lets rsync write a temporary file beside dir/name and rename it.
func (c rsyncCopier) deliver(ctx context.Context, t remote.Target, local, dir, name string) (int64, error) {
	if t.Peer {
		return 0, fmt.Errorf("deliver %s to %s: a neighbour takes no files", name, t.Name)
	}
	res, err := c.s.rsyncArgs(ctx, t, []string{local, remote.Dest(t, dir+"/"+name)})
	return res.Bytes, err
}
