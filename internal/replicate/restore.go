package replicate

import (
	"context"
	"fmt"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/wake"
)

// restore pulls ORG/REPO, which this node does not have (deleted by
// mistake, or only ever on a backup), from a backup: it is created and
// registered in its organisation, which must exist, then pulled and
// verified as any pull is. A failed pull takes the new repository away
// again, so that nothing half-made stays behind.
func (o OnDemand) restore(ctx context.Context, path, server string) (Result, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return Result{}, err
	}
	srv, err := o.Store.ServerByName(ctx, server)
	if err != nil {
		return Result{}, err
	}
	org, err := o.Store.OrgByName(ctx, rp.Org)
	if err != nil {
		return Result{}, fmt.Errorf("restore %s: %w; create the organisation first", rp, err)
	}
	rp.Org = org.Name // the database's spelling names the directory and the lock
	if srv.Role != store.Backup {
		return Result{}, fmt.Errorf("repository %s not found here; only a backup restores one this node does not have", rp)
	}
	t, syncer := TargetOf(srv), o.syncer()
	if _, _, err := RemoteRefs(ctx, syncer.Remote, t, rp); err != nil {
		return Result{}, fmt.Errorf("repository %s is neither here nor on %s: %w", rp, srv.Name, err)
	}
	// The lock, taken before the repository exists, keeps the workers
	// from syncing it, empty, over the copy it is restored from.
	unlock, err := syncer.lock(rp)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	r, undo, err := o.Create(ctx, rp)
	if err != nil {
		return Result{}, fmt.Errorf("restore %s: %w", rp, err)
	}
	rp = names.RepoPath{Org: r.Org, Repo: r.Name}
	dir, err := o.Disk.Open(r.Org, r.Name)
	if err == nil {
		var res Result
		if res, err = syncer.pullInto(ctx, dir, rp, t, false); err == nil {
			return res, o.restored(ctx, r, srv, res)
		}
	}
	undo()
	return Result{}, fmt.Errorf("restore %s from %s: %w (the repository is not kept)", rp, srv.Name, err)
}

// restored records a restore and queues the repository for every other
// target.
func (o OnDemand) restored(ctx context.Context, r store.Repo, srv store.Server, res Result) error {
	if err := o.Store.Record(ctx, o.Actor, "sync.pull", r.FullName(), map[string]any{"server": srv.Name, "created": true, "bytes": res.Bytes}); err != nil {
		return err
	}
	if err := o.Store.MarkDirty(ctx, r.Org, r.Name); err != nil {
		return err
	}
	wake.Work(o.Dir.WakeSocket())
	return nil
}
