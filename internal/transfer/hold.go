package transfer

import (
	"context"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// HoldIfCurrent takes the repository's lock and its lock on target t, in
// Sync's order, and keeps them (the func releases them) if t's refs are
// exactly this copy's: then no sync to t runs or can start, so nothing
// older lands on t until they are released. If t differs (a worker's
// sync from an older snapshot finished after the last sync), it releases
// them and reports false. A planned handover holds them from its last
// check through the change of primary.
func (s *Syncer) HoldIfCurrent(ctx context.Context, repo names.RepoPath, t remote.Target) (func(), bool, error) {
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return nil, false, err
	}
	unlockTarget, err := s.lockTarget(ctx, repo, t.Name)
	if err != nil {
		unlock()
		return nil, false, err
	}
	release := func() { unlockTarget(); unlock() }
	snap, err := TakeSnapshot(ctx, dir)
	if err != nil {
		release()
		return nil, false, err
	}
	got, err := RemoteFingerprint(ctx, s.Remote, t, repo)
	if err != nil {
		release()
		return nil, false, err
	}
	if got != snap.Only(t.Refs).Fingerprint {
		release()
		return nil, false, nil
	}
	return release, true, nil
}
