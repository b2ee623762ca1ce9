package replicate

import (
	"context"
	"time"

	"cpm/internal/names"
)

// Maintain repacks every repository geometrically (git repack
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
			start := time.Now()
			err := w.Syncer.Repack(ctx, names.RepoPath{Org: r.Org, Repo: r.Name})
			ev := w.Log.Info()
			if err != nil {
				ev = w.Log.Warn().Err(err)
			}
			ev.Str("repo", r.FullName()).Int64("duration_ms", time.Since(start).Milliseconds()).Msg("repack")
		}
	}
}

// Repack runs one geometric repack of ORG/REPO under its lock.
func (s *Syncer) Repack(ctx context.Context, repo names.RepoPath) error {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return err
	}
	unlock, err := s.lock(repo)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := gitOut(ctx, dir, "repack", "-d", "-q", "--geometric=2"); err != nil {
		return err
	}
	_, err = gitOut(ctx, dir, "prune-packed", "-q")
	return err
}
