// Package ondemand runs the syncs that someone asks for now rather than
// the queue: an operator's `sync push`, `sync verify`, `sync pull` and
// `repo list --on`, and a neighbour's `cpm-peer want` (or the sync after
// a forwarded push). Each is audited as its actor; the copying itself is
// internal/transfer's.
package ondemand

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/progress"
	"cpm/internal/remote"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
	"cpm/internal/wake"
)

// OnDemand runs the syncs an operator (or a neighbour) asks for now:
// `sync push`, `sync verify` and `sync pull`, each audited as Actor.
type OnDemand struct {
	Store *store.Store
	Dir   datadir.Dir
	Disk  repos.Root
	Actor store.Actor
	// Progress, when set, is the operator's progress bar.
	Progress *progress.Bar
	// FreeMargin is the free_space_margin setting (see transfer.Syncer).
	FreeMargin int64
	// Create, when set, creates and registers a repository this node
	// does not have, so that Pull can restore it from a backup (see
	// restore); undo takes it away again.
	Create func(ctx context.Context, rp names.RepoPath) (r store.Repo, undo func() error, err error)
}

func (o OnDemand) syncer() *transfer.Syncer {
	s := transfer.NewSyncer(o.Dir, o.Disk)
	s.Progress = o.Progress
	s.FreeMargin = o.FreeMargin
	return s
}

// resolve finds the repository and server a sync command names.
func (o OnDemand) resolve(ctx context.Context, path, server string) (store.Repo, store.Server, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Repo{}, store.Server{}, err
	}
	r, err := o.Store.Repo(ctx, rp.Org, rp.Repo)
	if err != nil {
		return store.Repo{}, store.Server{}, err
	}
	srv, err := o.Store.ServerByName(ctx, server)
	return r, srv, err
}

// Push copies ORG/REPO to a server now and records the verified result.
// A repository outside the server's scope is refused (a *ScopeError)
// unless force is set.
func (o OnDemand) Push(ctx context.Context, path, server string, force bool) (transfer.Result, error) {
	r, srv, err := o.resolve(ctx, path, server)
	if err != nil {
		return transfer.Result{}, err
	}
	if err := transfer.CheckScope(srv, r.FullName()); err != nil && !force {
		return transfer.Result{}, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, err)
	}
	syncer := o.syncer()
	if srv.Role == store.Neighbor {
		// Permissions travel before the repository, never after it.
		pub := &transfer.Publisher{Store: o.Store, Syncer: syncer}
		if _, err := pub.Ensure(ctx, srv); err != nil {
			return transfer.Result{}, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, err)
		}
	}
	job, jerr := o.Store.JobFor(ctx, r.ID, srv.ID)
	// Read before the sync's snapshot, so never ahead of what it sends.
	repoGen, gerr := o.Store.RepoGeneration(ctx, r.ID)
	if gerr != nil {
		return transfer.Result{}, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, gerr)
	}
	res, err := syncer.Sync(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, transfer.TargetOf(srv), true)
	if err != nil {
		return res, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, err)
	}
	if jerr == nil {
		if err := o.Store.Done(ctx, job, job.Generation, repoGen, res.Fingerprint, res.Bytes); err != nil {
			return res, err
		}
	}
	return res, o.Store.Record(ctx, o.Actor, "sync.push", r.FullName(), map[string]any{"server": srv.Name, "bytes": res.Bytes})
}

// Verification is what `sync verify` found.
type Verification struct {
	Repo, Server   string
	Local, Remote  string // ref fingerprints
	RemoteError    string // why the replica's refs could not be read
	RefsMatch      bool
	MissingObjects int64 // object files the replica lacks (rsync dry run)
	// Deep is the content check of every object file (--deep), and
	// Repaired what a repair then left (--repair).
	Deep     *transfer.Damage
	Repaired *transfer.Damage
}

// Verify compares the refs of ORG/REPO with its replica on a server, and
// the object files: by name and size, or by content when deep. With
// repair, it sends again what is missing or damaged and checks again.
func (o OnDemand) Verify(ctx context.Context, path, server string, deep, repair bool) (Verification, error) {
	r, srv, err := o.resolve(ctx, path, server)
	if err != nil {
		return Verification{}, err
	}
	local, err := o.Disk.Open(r.Org, r.Name)
	if err != nil {
		return Verification{}, err
	}
	t, rp, syncer := transfer.TargetOf(srv), names.RepoPath{Org: r.Org, Repo: r.Name}, o.syncer()
	snap, err := transfer.TakeSnapshot(ctx, local)
	if err != nil {
		return Verification{}, err
	}
	snap = snap.Only(t.Refs)
	v := Verification{Repo: r.FullName(), Server: srv.Name, Local: snap.Fingerprint}
	if err := v.compareRefs(ctx, syncer.Remote, t, rp); err != nil {
		return v, err
	}
	if !deep {
		v.MissingObjects, err = syncer.Missing(ctx, rp, t)
	} else {
		var d transfer.Damage
		if d, err = syncer.Check(ctx, rp, t, true); err == nil {
			v.Deep, v.MissingObjects = &d, int64(len(d.Missing))
		}
	}
	if err != nil {
		return v, err
	}
	if repair && (v.MissingObjects > 0 || (v.Deep != nil && !v.Deep.OK())) {
		if err := transfer.CheckScope(srv, r.FullName()); err != nil {
			return v, fmt.Errorf("repair %s on %s: %w", r.FullName(), srv.Name, err)
		}
		after, _, err := syncer.Repair(ctx, rp, t, deep)
		if err != nil {
			return v, err
		}
		v.Repaired = &after
		// With its objects back, the replica's refs can be read again.
		v.RemoteError = ""
		if err := v.compareRefs(ctx, syncer.Remote, t, rp); err != nil {
			return v, err
		}
	}
	if deep {
		if job, err := o.Store.JobFor(ctx, r.ID, srv.ID); err == nil {
			if err := o.Store.SetDeepCheck(ctx, job.RepoID, job.ServerID, time.Now(), v.deepResult()); err != nil {
				return v, err
			}
		}
	}
	return v, o.Store.Record(ctx, o.Actor, "sync.verify", r.FullName(), map[string]any{"server": srv.Name, "deep": deep, "repair": repair})
}

// compareRefs reads the replica's ref fingerprint into v. git there
// failing to read the refs (an object they name is gone) is a finding,
// not an error: the object check says which.
func (v *Verification) compareRefs(ctx context.Context, env remote.Env, t remote.Target, rp names.RepoPath) error {
	got, err := transfer.RemoteFingerprint(ctx, env, t, rp)
	var re *remote.Error
	switch {
	case errors.As(err, &re) && re.Code == 1:
		v.RemoteError = printable.Line(re.Stderr)
	case err != nil:
		return err
	default:
		v.Remote, v.RefsMatch = got, got == v.Local
	}
	return nil
}

// deepResult is what sync status shows of a deep verification.
func (v Verification) deepResult() string {
	result := v.Deep.String()
	if v.Repaired != nil {
		result = "repaired: " + result
		if !v.Repaired.OK() {
			result = "not repaired: " + v.Repaired.String()
		}
	}
	return result
}

// Pull copies ORG/REPO from a server into the local repository, refusing
// to drop local commits unless force is set. The result then replicates
// to every other target.
//
// A repository this node lost is restored from a backup's replica (see
// restore). From a neighbour, any other repository that is not this
// node's own is the neighbour's: it is asked to send it now (its replica
// here is refreshed with the neighbour's metadata first), as a push there
// would.
func (o OnDemand) Pull(ctx context.Context, path, server string, force bool) (transfer.Result, error) {
	if res, tried, err := o.restore(ctx, path, server); tried {
		return res, err
	}
	if res, asked, err := o.pullFromOrigin(ctx, path, server); asked {
		return res, err
	}
	r, srv, err := o.resolve(ctx, path, server)
	if err != nil {
		return transfer.Result{}, err
	}
	res, err := o.syncer().Pull(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, transfer.TargetOf(srv), force)
	if err != nil {
		return res, fmt.Errorf("pull %s from %s: %w", r.FullName(), srv.Name, err)
	}
	if err := o.Store.Record(ctx, o.Actor, "sync.pull", r.FullName(), map[string]any{"server": srv.Name, "force": force, "bytes": res.Bytes}); err != nil {
		return res, err
	}
	if err := o.Store.MarkDirty(ctx, r.Org, r.Name); err != nil {
		return res, err
	}
	wake.Work(o.Dir.WakeSocket())
	return res, nil
}

// fingerprintRe is a ref fingerprint: a SHA-256 in hex.
var fingerprintRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// pullFromOrigin asks a neighbour to send one of its own repositories
// now; asked is false when path is this node's own repository or server is
// not a neighbour.
func (o OnDemand) pullFromOrigin(ctx context.Context, path, server string) (res transfer.Result, asked bool, err error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return res, true, err
	}
	srv, err := o.Store.ServerByName(ctx, server)
	if err != nil || srv.Role != store.Neighbor {
		return res, false, nil
	}
	if _, err := o.Store.Repo(ctx, rp.Org, rp.Repo); !errors.Is(err, store.ErrNotFound) {
		return res, false, nil
	}
	out, err := o.syncer().Remote.Run(ctx, transfer.TargetOf(srv), "cpm-peer want "+rp.String())
	if err != nil {
		return res, true, fmt.Errorf("pull %s from %s: %w", rp, srv.Name, err)
	}
	// The answer comes from the network: a verified sync names the
	// fingerprint it verified, and nothing else will do.
	if err := json.Unmarshal(out, &res); err != nil || !fingerprintRe.MatchString(res.Fingerprint) {
		return transfer.Result{}, true, fmt.Errorf("pull %s from %s: not the answer of a verified sync", rp, srv.Name)
	}
	return res, true, nil
}
