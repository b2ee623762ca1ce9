package ondemand

import (
	"context"
	"errors"
	"fmt"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
	"cpm/internal/wake"
)

// restore pulls ORG/REPO, which this node does not have (deleted by
// mistake, or only ever on a backup), from a backup's replica of it: it is created and registered in its organisation, which must exist,
// then pulled and verified as any pull is. A failed pull takes the new
// repository away again, so that nothing half-made stays behind.
//
// Only a backup restores: a neighbour serves this node's replicas only
// while this node's metadata lists them, and a repository this node does
// not have is, there, the neighbour's own (see pullFromOrigin). tried is
// false when there is nothing to restore: the repository is here, o
// cannot create one, or the server is not a backup.
func (o OnDemand) restore(ctx context.Context, path, server string) (res transfer.Result, tried bool, err error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil || o.Create == nil {
		return transfer.Result{}, false, nil
	}
	if _, err := o.Store.Repo(ctx, rp.Org, rp.Repo); !errors.Is(err, store.ErrNotFound) {
		return transfer.Result{}, false, nil
	}
	srv, err := o.Store.ServerByName(ctx, server)
	if err != nil || srv.Role != store.Backup {
		return transfer.Result{}, false, nil // Pull's other paths answer
	}
	org, err := o.Store.OrgByName(ctx, rp.Org)
	if err != nil {
		return transfer.Result{}, true, fmt.Errorf("restore %s: %w; create the organisation first", rp, err)
	}
	rp.Org = org.Name // the database's spelling names the directory and the lock
	t, syncer := transfer.TargetOf(srv), o.syncer()
	if _, _, err := transfer.RemoteRefs(ctx, syncer.Remote, t, rp); err != nil {
		return transfer.Result{}, true, fmt.Errorf("repository %s is neither here nor on %s: %w", rp, srv.Name, err)
	}
	res, err = o.restoreFrom(ctx, syncer, rp, srv)
	return res, true, err
}

// restoreFrom creates rp and pulls it from srv. The repository's lock,
// taken before it exists, keeps the workers from syncing it, empty, over
// the copy it is restored from.
func (o OnDemand) restoreFrom(ctx context.Context, syncer *transfer.Syncer, rp names.RepoPath, srv store.Server) (transfer.Result, error) {
	unlock, err := syncer.Lock(ctx, rp)
	if err != nil {
		return transfer.Result{}, err
	}
	defer unlock()
	r, undo, err := o.Create(ctx, rp)
	if err != nil {
		return transfer.Result{}, fmt.Errorf("restore %s: %w", rp, err)
	}
	rp = names.RepoPath{Org: r.Org, Repo: r.Name}
	dir, err := o.Disk.Open(r.Org, r.Name)
	if err == nil {
		var res transfer.Result
		if res, err = syncer.PullLocked(ctx, dir, rp, transfer.TargetOf(srv), false); err == nil {
			return res, o.restored(ctx, r, srv, res)
		}
	}
	if uerr := undo(); uerr != nil {
		return transfer.Result{}, fmt.Errorf("restore %s from %s: %w; removing the new repository failed too: %v", rp, srv.Name, err, uerr)
	}
	return transfer.Result{}, fmt.Errorf("restore %s from %s: %w (the repository is not kept)", rp, srv.Name, err)
}

// restored records a restore and queues the repository for every other
// target.
func (o OnDemand) restored(ctx context.Context, r store.Repo, srv store.Server, res transfer.Result) error {
	if err := o.Store.Record(ctx, o.Actor, "sync.pull", r.FullName(), map[string]any{"server": srv.Name, "created": true, "bytes": res.Bytes}); err != nil {
		return err
	}
	if err := o.Store.MarkDirty(ctx, r.Org, r.Name); err != nil {
		return err
	}
	wake.Work(o.Dir.WakeSocket())
	return nil
}
