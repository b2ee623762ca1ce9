package replicate

import (
	"context"
	"fmt"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// keepDiverged runs before the sync of a job whose node was the
// repository's primary until j.DivergeEpoch: what that node wrote and
// this (the new primary's) copy lacks is kept here under
// refs/cpm/diverged/EPOCH/ and recorded, which clears the job's
// DivergeEpoch; only then may the sync replace the node's copy. A node
// that cannot be read fails the job (it is retried): nothing of it is
// overwritten before its writes are kept.
func (w *Workers) keepDiverged(ctx context.Context, j store.Job, srv store.Server, rp names.RepoPath) error {
	if j.DivergeEpoch == 0 || srv.Role != store.Node {
		return nil
	}
	saved, err := w.Syncer.SaveDiverged(ctx, rp, transfer.TargetOf(srv), j.DivergeEpoch)
	if err != nil {
		return err
	}
	if err := w.Store.RecordDiverged(ctx, store.Actor{Name: "cpm-shell"}, j, saved); err != nil {
		return fmt.Errorf("record diverged refs of %s: %w", j.Repo, err)
	}
	ev := w.Log.Info()
	if len(saved) > 0 {
		ev = w.Log.Warn()
	}
	ev.Str("repo", j.Repo).Str("node", j.Server).Int64("epoch", j.DivergeEpoch).Int("refs", len(saved)).Msg("diverged refs kept")
	return nil
}
