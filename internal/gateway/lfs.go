package gateway

import (
	"context"
	"errors"
	"strconv"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/hook"
	"cpm/internal/lfs"
	"cpm/internal/queue"
	"cpm/internal/store"
)

// serveLFS runs git-lfs-transfer: downloads need read, uploads push, and
// every lock verb push, exactly as git's own verbs; a replica serves
// downloads with its origin's permissions and takes no uploads or locks.
//
// noWrite, when set, is why this identity may read but not write: the
// session still opens, so that git-lfs shows that reason for an upload
// or a lock instead of a bare exit status.
func (g *Gateway) serveLFS(ctx context.Context, s Session, cmd command.Command, grant access.Grant, dir, noWrite string) error {
	sess := &lfs.Session{Op: lfs.Operation(cmd.Operation), Repo: lfs.Repo{
		Objects:  lfs.Objects{Dir: lfs.ObjectsDir(dir), MaxSize: g.LFSMaxObjectSize},
		User:     s.Identity.Name(),
		CanWrite: noWrite == "" && grant.Perm >= authz.PermWrite && grant.Origin == "",
		Admin:    noWrite == "" && grant.Perm >= authz.PermAdmin && grant.Origin == "",
		NoWrite:  noWrite,
	}}
	if grant.Origin == "" {
		r, err := g.Store.Repo(ctx, grant.Repo.Org, grant.Repo.Repo)
		if err != nil {
			return err
		}
		sess.Locks = storeLocks{st: g.Store, repoID: r.ID, repo: grant.Repo.String(),
			actor: s.actor()}
		sess.Fence = g.lfsFence(ctx, s, grant)
	}
	err := sess.Serve(ctx, s.Stdin, s.Stdout)
	ev := g.Log.Info()
	if s.Relayed != "" {
		ev = ev.Str("via", s.Relayed)
	}
	ev.Str("user", s.Identity.Name()).Str("repo", grant.Repo.String()).Str("operation", cmd.Operation).
		Int("objects_up", sess.Stats.Uploaded).Int64("bytes_up", sess.Stats.BytesUploaded).
		Int("objects_down", sess.Stats.Downloaded).Int64("bytes_down", sess.Stats.BytesDownloaded).
		Int("refused", sess.Stats.Refused).Msg("lfs")
	if sess.Stats.Uploaded > 0 {
		// New objects replicate like a push, even before the push that
		// refers to them.
		queue.Enqueue(ctx, g.Store, g.DataDir, grant.Repo)
	}
	var r *lfs.Refused
	if errors.As(err, &r) {
		return refuse("git-lfs-transfer: %s", r.Reason)
	}
	return err
}

// readOnlyLFS turns a refused LFS upload session into a read-only one
// for an identity that may read the repository (a reader, a replica's
// reader): its uploads and locks are then refused one by one with err's
// reason. Anyone who may not read it gets err unchanged.
func (g *Gateway) readOnlyLFS(ctx context.Context, s Session, cmd command.Command, grant access.Grant, err error) (access.Grant, string, error) {
	var e *access.Error
	if cmd.Operation != "upload" || !errors.As(err, &e) || (e.Kind != access.Denied && e.Kind != access.ReadOnly) {
		return grant, "", err
	}
	grant, rerr := g.Access.Authorize(ctx, s.Identity, cmd.Repo, authz.Read)
	if rerr != nil {
		return grant, "", err
	}
	return grant, e.Error(), nil
}

// storeLocks keeps one repository's LFS locks in the store.
type storeLocks struct {
	st     *store.Store
	repoID int64
	repo   string
	actor  store.Actor
}

func toLock(l store.LFSLock) lfs.Lock {
	return lfs.Lock{ID: strconv.FormatInt(l.ID, 10), Path: l.Path, Owner: l.Owner, LockedAt: l.LockedAt}
}

func (sl storeLocks) Create(ctx context.Context, path, owner string) (lfs.Lock, error) {
	l, err := sl.st.CreateLFSLock(ctx, sl.actor, sl.repoID, sl.repo, path, owner)
	if errors.Is(err, store.ErrExists) {
		return toLock(l), lfs.ErrLockExists
	}
	return toLock(l), err
}

func (sl storeLocks) Get(ctx context.Context, id string) (lfs.Lock, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return lfs.Lock{}, lfs.ErrNoLock
	}
	l, err := sl.st.LFSLock(ctx, sl.repoID, n)
	if errors.Is(err, store.ErrNotFound) {
		return lfs.Lock{}, lfs.ErrNoLock
	}
	return toLock(l), err
}

func (sl storeLocks) List(ctx context.Context, path, id, cursor string, limit int) ([]lfs.Lock, string, error) {
	if id != "" {
		l, err := sl.Get(ctx, id)
		if errors.Is(err, lfs.ErrNoLock) {
			return nil, "", nil
		}
		return []lfs.Lock{l}, "", err
	}
	from, _ := strconv.ParseInt(cursor, 10, 64)
	ls, err := sl.st.LFSLocks(ctx, sl.repoID, path, from, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ls) > limit {
		next, ls = strconv.FormatInt(ls[limit].ID, 10), ls[:limit]
	}
	out := make([]lfs.Lock, 0, len(ls))
	for _, l := range ls {
		out = append(out, toLock(l))
	}
	return out, next, nil
}

// Delete removes l without reading it again: the session has just read
// it to decide whether this identity may remove it.
func (sl storeLocks) Delete(ctx context.Context, l lfs.Lock) error {
	n, err := strconv.ParseInt(l.ID, 10, 64)
	if err != nil {
		return lfs.ErrNoLock
	}
	err = sl.st.DeleteLFSLock(ctx, sl.actor, sl.repoID, sl.repo, store.LFSLock{ID: n, RepoID: sl.repoID, Path: l.Path, Owner: l.Owner, LockedAt: l.LockedAt})
	if errors.Is(err, store.ErrNotFound) {
		return lfs.ErrNoLock
	}
	return err
}

// lfsFence is an LFS upload session's check, as each object is stored,
// that this cluster node still holds its lease and the repository under
// the session's epoch (hook.CheckFence, as pre-receive asks); nil
// outside a cluster.
func (g *Gateway) lfsFence(ctx context.Context, s Session, grant access.Grant) func() error {
	if g.Self == "" || s.epoch == "" {
		return nil
	}
	return func() error { return hook.CheckFence(ctx, g.Store, g.DataDir, grant.Repo, s.epochOf) }
}
