package replicate

import (
	"context"
	"time"

	"cpm/internal/names"
	"cpm/internal/transfer"
)

// Maintain repacks every repository (in a cluster, every one this node
// is primary of) geometrically (git repack
// --geometric=2: small packs roll into bigger ones, big packs stay, so
// replicas receive only the new packs) under the repository's lock, every
// interval until ctx ends.
func (w *Workers) Maintain(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		repos, err := w.Store.Repos(ctx, "")
		if err != nil {
			w.Log.Error().Err(err).Msg("maintenance: list repositories")
			continue
		}
		for _, r := range repos {
			if ctx.Err() != nil {
				return
			}
			if !w.mine(r.PrimaryID) {
				continue // a replica here: its primary repacks, and the sync brings the packs
			}
			w.tidy(names.RepoPath{Org: r.Org, Repo: r.Name})
			start := time.Now()
			err := w.Syncer.Repack(ctx, names.RepoPath{Org: r.Org, Repo: r.Name})
			ev := w.Log.Info()
			if err != nil {
				ev = w.Log.Warn().Err(err)
			}
			ev.Str("repo", r.FullName()).Int64("duration_ms", time.Since(start).Milliseconds()).Msg("repack")
			w.pruneTargets(ctx, names.RepoPath{Org: r.Org, Repo: r.Name})
		}
	}
}

// tidy removes what interrupted pushes left in repo, with a log event.
func (w *Workers) tidy(repo names.RepoPath) {
	age := w.StaleAge
	if age <= 0 {
		age = 24 * time.Hour
	}
	removed, bytes, err := w.Syncer.Tidy(repo, age)
	if err != nil {
		w.Log.Warn().Err(err).Str("repo", repo.String()).Msg("tidy")
	}
	if len(removed) > 0 {
		w.Log.Info().Str("repo", repo.String()).Int("removed", len(removed)).Int64("bytes", bytes).
			Str("first", removed[0]).Msg("tidy: removed what interrupted pushes left")
	}
}

// pruneTargets runs the prune pass on every target whose replica of repo
// is current; the others get their turn after their next sync.
func (w *Workers) pruneTargets(ctx context.Context, repo names.RepoPath) {
	jobs, err := w.Store.Jobs(ctx)
	if err != nil {
		return
	}
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return
	}
	for _, j := range jobs {
		if j.Repo != repo.String() || !j.Done() {
			continue
		}
		for _, srv := range servers {
			// Out of scope, a replica is left alone: pruning sends objects.
			if srv.ID != j.ServerID || srv.BlockedReason != "" || transfer.CheckScope(srv, j.Repo) != nil {
				continue
			}
			res, err := w.Syncer.PruneTarget(ctx, repo, transfer.TargetOf(srv))
			ev := w.Log.Info()
			if err != nil {
				ev = w.Log.Warn().Err(err)
			}
			ev.Str("repo", j.Repo).Str("target", srv.Name).Int64("bytes", res.Bytes).Msg("prune replica")
		}
	}
}
