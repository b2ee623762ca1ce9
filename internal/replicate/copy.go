package replicate

import (
	"context"

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
}

// A copier ships a copyJob to its target in the order that keeps the
// replica consistent for readers: data, then indexes, then refs.
type copier interface {
	copy(ctx context.Context, j copyJob) (Result, error)
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

// rsyncStep is one rsync run of a copy: src into the replica's objects
// (objects) or top folder, with args.
type rsyncStep struct {
	src     string
	objects bool
	args    []string
}

// rsyncSteps are the runs of a copy, in order: the skeleton of a fresh
// backup replica (never overwriting anything), the object data, the
// object indexes, and the refs, which replace the target's wholesale.
// A neighbour lays its replica's foundations itself (prepare).
func rsyncSteps(j copyJob) []rsyncStep {
	passes := objectPasses()
	steps := []rsyncStep{
		{j.skelDir + "/", false, []string{"--ignore-existing"}},
		{j.dir + "/objects/", true, passes[0]},
		{j.dir + "/objects/", true, passes[1]},
		{j.refsDir + "/", false, []string{"--checksum", "--delete-after",
			"--include=/HEAD", "--include=/packed-refs", "--include=/refs/***", "--exclude=*"}},
	}
	if !j.fresh || j.target.Peer {
		steps = steps[1:]
	}
	return steps
}

// rsyncCopier runs rsyncSteps: over ssh to a backup, or to the daemon
// module a neighbour sets up for the one replica.
type rsyncCopier struct{ s *Syncer }

func (c rsyncCopier) copy(ctx context.Context, j copyJob) (Result, error) {
	var res Result
	for _, st := range rsyncSteps(j) {
		r, err := c.s.push(ctx, j.target, j.repo, st.src, st.objects, st.args...)
		if err != nil {
			return res, err
		}
		res.Bytes += r.Bytes
		res.Files += r.Files
	}
	return res, nil
}
