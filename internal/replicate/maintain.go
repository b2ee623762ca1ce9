package replicate

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Maintain runs a maintenance pass (MaintainOnce) every interval until
// ctx ends.
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
		w.MaintainOnce(ctx)
	}
}

// MaintainOnce repacks every repository (in a cluster, every one this
// node is primary of) and prunes its replicas, unless a pass is running
// already: in this process, or in another on the same data directory
// (cpm-shell serve and cpm-shell replicate both run the workers). It
// reports whether it ran. A pass over N repositories reads the queue
// once and runs git only where something changed since the last pass.
func (w *Workers) MaintainOnce(ctx context.Context) bool {
	if !w.maintaining.CompareAndSwap(false, true) {
		w.Log.Info().Str("held_by", "this process").Msg("maintenance skipped: a pass is running")
		return false
	}
	defer w.maintaining.Store(false)
	unlock, held, err := transfer.TryLockFile(filepath.Join(w.Syncer.LockDir, "maintenance.lock"), false)
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: take the pass's lock")
		return false
	}
	if !held {
		w.Log.Info().Str("held_by", "another process").Msg("maintenance skipped: a pass is running")
		return false
	}
	defer unlock()
	w.maintainPass(ctx)
	return true
}

// passCounts sums up one pass for its log event.
type passCounts struct {
	repos, unchanged, repacked, pruned, failed int
}

func (w *Workers) maintainPass(ctx context.Context) {
	start := time.Now()
	repos, err := w.Store.Repos(ctx, "")
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: list repositories")
		return
	}
	targets, err := w.pruneTargetsByRepo(ctx)
	if err != nil {
		w.Log.Error().Err(err).Msg("maintenance: read the queue")
		return
	}
	var n passCounts
	for _, r := range repos {
		if ctx.Err() != nil {
			break
		}
		if !w.mine(r.PrimaryID) {
			continue // a replica here: its primary repacks, and the sync brings the packs
		}
		n.repos++
		w.maintainRepo(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, targets[r.FullName()], &n)
	}
	w.Log.Info().Int("repos", n.repos).Int("unchanged", n.unchanged).Int("repacked", n.repacked).
		Int("pruned", n.pruned).Int("failed", n.failed).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("maintenance pass")
}

// maintainRepo tidies, repacks and prunes one repository.
func (w *Workers) maintainRepo(ctx context.Context, repo names.RepoPath, targets repoTargets, n *passCounts) {
	w.tidy(repo)
	start := time.Now()
	res, err := w.Syncer.Repack(ctx, repo)
	// A repository left as it was is counted in the pass's event, not
	// logged on its own: 50,000 lines an hour would say nothing.
	ev := w.Log.Info()
	switch {
	case err != nil:
		n.failed++
		ev = w.Log.Warn().Err(err)
	case res.Unchanged:
		n.unchanged++
		ev = w.Log.Debug()
	default:
		n.repacked++
	}
	ev.Str("repo", repo.String()).Bool("unchanged", res.Unchanged).Int("removed", res.Removed).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("repack")
	if err == nil {
		w.prune(ctx, repo, targets, res.Removed > 0 || res.Pushed, n)
	}
}

// prune prunes repo's current replicas whose prune is owed. A replica
// holds what the source no longer has only when the repack removed
// files, or a push brought files a replica may have got another way (a
// cluster's pack sent ahead): then every replica of repo is owed one. A
// prune that failed, or a replica not current yet, stays owed in a file
// beside the maintenance stamp (transfer.PruneOwed), so that a later
// pass, which finds the repository unchanged, still prunes it.
func (w *Workers) prune(ctx context.Context, repo names.RepoPath, targets repoTargets, changed bool, n *passCounts) {
	before, err := w.Syncer.PruneOwed(repo)
	if err != nil {
		w.Log.Warn().Err(err).Str("repo", repo.String()).Msg("prune replica")
	}
	owed := owedPrunes(before, targets, changed)
	for _, t := range targets.current {
		if owed[t.Name] && w.pruneTarget(ctx, repo, t) {
			n.pruned++
			delete(owed, t.Name)
		}
	}
	after := slices.Sorted(maps.Keys(owed))
	if slices.Equal(before, after) {
		return
	}
	if err := w.Syncer.SetPruneOwed(repo, after); err != nil {
		w.Log.Warn().Err(err).Str("repo", repo.String()).Msg("prune replica")
	}
}

// owedPrunes is whom a prune is owed to before this pass prunes: those
// owed one before and, when the repository changed, all its replicas;
// only targets it still has (a removed backup is owed nothing).
func owedPrunes(before []string, targets repoTargets, changed bool) map[string]bool {
	has := map[string]bool{}
	for _, t := range targets.current {
		has[t.Name] = true
	}
	for _, name := range targets.behind {
		has[name] = true
	}
	owed := map[string]bool{}
	for _, name := range before {
		if has[name] {
			owed[name] = true
		}
	}
	if changed {
		maps.Copy(owed, has)
	}
	return owed
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

// repoTargets are a repository's replicas that a prune may concern:
// current ones (in scope, not blocked, synced), and the names of the
// others in scope, whose prune waits until they are current.
type repoTargets struct {
	current []remote.Target
	behind  []string
}

// pruneTargetsByRepo reads the queue once for a whole pass: for each
// repository, its replicas in scope, current or behind.
func (w *Workers) pruneTargetsByRepo(ctx context.Context) (map[string]repoTargets, error) {
	jobs, err := w.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]store.Server, len(servers))
	for _, srv := range servers {
		byID[srv.ID] = srv
	}
	out := map[string]repoTargets{}
	for _, j := range jobs {
		srv, ok := byID[j.ServerID]
		// Out of scope, a replica is left alone: pruning sends objects.
		if !ok || transfer.CheckScope(srv, j.Repo) != nil {
			continue
		}
		rt := out[j.Repo]
		if j.Done() && srv.BlockedReason == "" {
			rt.current = append(rt.current, transfer.TargetOf(srv))
		} else {
			rt.behind = append(rt.behind, srv.Name)
		}
		out[j.Repo] = rt
	}
	return out, nil
}

// pruneTarget prunes repo's replica on t, with a log event; it reports
// whether the prune succeeded.
func (w *Workers) pruneTarget(ctx context.Context, repo names.RepoPath, t remote.Target) bool {
	res, err := w.Syncer.PruneTarget(ctx, repo, t)
	ev := w.Log.Info()
	if err != nil {
		ev = w.Log.Warn().Err(err)
	}
	ev.Str("repo", repo.String()).Str("target", t.Name).Int64("bytes", res.Bytes).Msg("prune replica")
	return err == nil
}
