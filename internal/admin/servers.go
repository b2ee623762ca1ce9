package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/ondemand"
	"cpm/internal/pins"
	"cpm/internal/progress"
	"cpm/internal/remote"
	"cpm/internal/replica"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// ServerSpec is what `server add` is given.
type ServerSpec struct {
	Name, Host, User, Path, HostKey string
	Role                            store.Role
	Port                            int
	// Unapproved servers get no syncs until `server approve` (neighbours
	// found by discovery).
	Unapproved bool
	// PeerKey is a neighbour's replication public key: once approved, the
	// neighbour may deliver its replicas here with it.
	PeerKey string
	Scope   ServerScope
}

// ServerScope is what a server replicates and how: `server add` and
// `server set` take it. Nil fields are left as they are (or default).
type ServerScope struct {
	// HostKey re-pins the server (server set only): a key line, or ""
	// to fetch the key from the server and confirm it as server add does.
	HostKey               *string
	Repos, Refs           *string
	BWLimitKBps, Compress *int
	Every                 *time.Duration
	AuthorizedKeys        *string
}

var authorizedKeysRe = regexp.MustCompile(`^[A-Za-z0-9._/~-]{1,255}$`)

// check validates the scope and turns it into the store's terms.
func (sc ServerScope) check() (store.ServerSettings, error) {
	var set store.ServerSettings
	if sc.Repos != nil {
		if err := transfer.CheckRepoPatterns(*sc.Repos); err != nil {
			return set, err
		}
		v := strings.Join(transfer.SplitPatterns(*sc.Repos), ",")
		set.RepoPatterns = &v
	}
	if sc.Refs != nil {
		if err := transfer.CheckRefPatterns(*sc.Refs); err != nil {
			return set, err
		}
		v := strings.Join(transfer.SplitPatterns(*sc.Refs), ",")
		set.RefPatterns = &v
	}
	if sc.BWLimitKBps != nil {
		if *sc.BWLimitKBps < 0 {
			return set, errors.New("--bwlimit: want KiB/s, 0 for no limit")
		}
		set.BWLimitKBps = sc.BWLimitKBps
	}
	if sc.Compress != nil {
		if *sc.Compress < 0 || *sc.Compress > 9 {
			return set, errors.New("--compress: want a level from 0 (none) to 9")
		}
		set.Compress = sc.Compress
	}
	if sc.Every != nil {
		if *sc.Every < time.Second || *sc.Every > 365*24*time.Hour {
			return set, fmt.Errorf("--every %s: want between 1s and 8760h", *sc.Every)
		}
		secs := int(sc.Every.Seconds())
		set.Every = &secs
	}
	if sc.AuthorizedKeys != nil {
		p := *sc.AuthorizedKeys
		if !authorizedKeysRe.MatchString(p) || strings.Contains(p, "..") {
			return set, fmt.Errorf("--authorized-keys %q: want a path of letters, digits, . _ - / ~", p)
		}
		set.AuthorizedKeys = &p
	}
	return set, nil
}

// AddServer registers a replication target and pins its host key. Without
// a host key it asks the server for one and lets confirm decide, showing
// its fingerprint; nothing is pinned that the operator did not accept.
func (s *Service) AddServer(ctx context.Context, dir datadir.Dir, spec ServerSpec, confirm func(fingerprint string) bool) (store.Server, error) {
	if err := names.Check(names.User, spec.Name); err != nil {
		return store.Server{}, fmt.Errorf("server name: %w", err)
	}
	if err := s.notANode(ctx, spec.Name); err != nil {
		return store.Server{}, err
	}
	if !spec.Role.Valid() {
		return store.Server{}, fmt.Errorf("invalid role %q: want backup or neighbor", spec.Role)
	}
	t := remote.Target{Name: spec.Name, Host: spec.Host, Port: spec.Port, User: spec.User, Path: spec.Path}
	if err := remote.CheckTarget(t); err != nil {
		return store.Server{}, err
	}
	key, err := pinHostKey(ctx, spec.Host, spec.Port, spec.HostKey, confirm)
	if err != nil {
		return store.Server{}, err
	}
	peerKey, peerFP, err := s.checkPeerKey(ctx, spec)
	if err != nil {
		return store.Server{}, err
	}
	set, err := spec.Scope.check()
	if err != nil {
		return store.Server{}, err
	}
	row := store.Server{
		Name: spec.Name, Host: spec.Host, Port: spec.Port, User: spec.User, Path: spec.Path,
		Role: spec.Role, HostKey: key, Approved: !spec.Unapproved, PeerKey: peerKey, PeerFingerprint: peerFP,
	}
	if set.RepoPatterns != nil {
		row.RepoPatterns = *set.RepoPatterns
	}
	if set.RefPatterns != nil {
		row.RefPatterns = *set.RefPatterns
	}
	if set.BWLimitKBps != nil {
		row.BWLimitKBps = *set.BWLimitKBps
	}
	if set.Compress != nil {
		row.Compress = *set.Compress
	}
	if set.Every != nil {
		row.EverySeconds = *set.Every
	}
	if set.AuthorizedKeys != nil {
		row.AuthorizedKeys = *set.AuthorizedKeys
	}
	srv, err := s.Store.AddServer(ctx, s.Actor, row)
	if err != nil {
		return store.Server{}, err
	}
	return srv, pins.Write(ctx, s.Store, dir)
}

// pinHostKey returns the host key to pin: line, or when line is empty the
// key the server presents, once confirm accepts its fingerprint.
func pinHostKey(ctx context.Context, host string, port int, line string, confirm func(fingerprint string) bool) (string, error) {
	if line != "" {
		return remote.ParseHostKey(line)
	}
	scanned, err := remote.ScanHostKey(ctx, host, port)
	if err != nil {
		return "", err
	}
	if !confirm(remote.Fingerprint(scanned)) {
		return "", errors.New("host key not confirmed; nothing changed (pass --host-key LINE, or --yes after checking the fingerprint)")
	}
	return scanned, nil
}

// checkPeerKey validates a neighbour's replication key: one public key,
// for a neighbour only, and not a key that already speaks for someone
// here (it would log in as them, never as the peer).
func (s *Service) checkPeerKey(ctx context.Context, spec ServerSpec) (string, string, error) {
	if spec.PeerKey == "" {
		return "", "", nil
	}
	if spec.Role != store.Neighbor {
		return "", "", errors.New("--peer-key is for neighbours: backups do not deliver replicas")
	}
	key, err := remote.ParseHostKey(spec.PeerKey)
	if err != nil {
		return "", "", fmt.Errorf("peer key: %w", err)
	}
	fp := remote.Fingerprint(key)
	if _, err := s.Store.KeyOwnerByFingerprint(ctx, fp); err == nil {
		return "", "", fmt.Errorf("peer key %s is registered here as a user's or deploy key; a neighbour needs a key of its own", fp)
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", "", err
	}
	return key, fp, nil
}

// SetServer changes a server's scope and transfer settings; they apply
// from its next sync. A changed scope queues every repository for the
// server again: what came into scope is sent, what left it is left alone.
// A new host key is pinned for this server alone, closes connections
// made under the old pin and lifts a block.
func (s *Service) SetServer(ctx context.Context, dir datadir.Dir, name string, sc ServerScope, confirm func(fingerprint string) bool) (store.Server, error) {
	set, err := sc.check()
	if err != nil {
		return store.Server{}, err
	}
	if err := s.notANode(ctx, name); err != nil {
		return store.Server{}, err
	}
	old, err := s.Store.ServerByName(ctx, name)
	if err != nil {
		return old, err
	}
	if sc.HostKey != nil {
		key, err := pinHostKey(ctx, old.Host, old.Port, *sc.HostKey, confirm)
		if err != nil {
			return old, err
		}
		set.HostKey = &key
	}
	if err := s.Store.SetServer(ctx, s.Actor, name, set); err != nil {
		return store.Server{}, err
	}
	srv, err := s.Store.ServerByName(ctx, name)
	if err != nil {
		return srv, err
	}
	if set.HostKey != nil {
		remote.ForDataDir(dir).CloseMasters(name)
		if err := pins.Write(ctx, s.Store, dir); err != nil {
			return srv, err
		}
	}
	if set.RepoPatterns != nil || set.RefPatterns != nil {
		if err := s.Store.RequeueServer(ctx, srv.ID); err != nil {
			return srv, err
		}
	}
	return srv, nil
}

// RemoveServer forgets a target; its replicas stay where they are.
func (s *Service) RemoveServer(ctx context.Context, dir datadir.Dir, name string) error {
	if err := names.Check(names.User, name); err != nil {
		return fmt.Errorf("server name: %w", err)
	}
	if err := s.notANode(ctx, name); err != nil {
		return err
	}
	if err := s.Store.RemoveServer(ctx, s.Actor, name); err != nil {
		return err
	}
	// A connection made to it must not serve a server added next under
	// the same name (ControlPersist would keep it for 30 s).
	remote.ForDataDir(dir).CloseMasters(name)
	// A removed neighbour's replicas are no longer served here: their
	// permissions would never be updated again.
	if err := replica.New(dir.Peers()).Forget(name); err != nil {
		return err
	}
	return pins.Write(ctx, s.Store, dir)
}

// onDemand runs the syncs an operator asks for, as the service's actor.
func (s *Service) onDemand(dir datadir.Dir, bar *progress.Bar) ondemand.OnDemand {
	return ondemand.OnDemand{Store: s.Store, Dir: dir, Disk: s.Disk, Actor: s.Actor, Progress: bar, FreeMargin: s.FreeMargin}
}

// bar is the progress bar of a sync on the operator's terminal, if
// there is one (nil: none).
func bar(terminal *os.File, what string) *progress.Bar {
	if terminal == nil {
		return nil
	}
	return progress.New(terminal, what)
}

// SyncPush copies ORG/REPO to a server now and records the verified
// result; outside the server's scope only with force. On a terminal, a
// progress bar shows it going.
func (s *Service) SyncPush(ctx context.Context, dir datadir.Dir, path, server string, force bool, terminal *os.File) (res transfer.Result, err error) {
	b := bar(terminal, "sync "+path)
	defer func() { b.End(err == nil) }()
	return s.onDemand(dir, b).Push(ctx, path, server, force)
}

// SyncVerify compares ORG/REPO with its replica on a server (see
// ondemand.OnDemand.Verify).
func (s *Service) SyncVerify(ctx context.Context, dir datadir.Dir, path, server string, deep, repair bool) (ondemand.Verification, error) {
	return s.onDemand(dir, nil).Verify(ctx, path, server, deep, repair)
}

// SyncPull copies ORG/REPO from a server into the local repository (see
// ondemand.OnDemand.Pull).
//
// A repository this node does not have is restored from a backup:
// created and registered (private, with the default protected refs) as
// `repo create` would, then pulled. cpm-admin runs with the data
// directory in hand, as a site admin does, so the org-admin right that
// creating asks for is the operator's.
func (s *Service) SyncPull(ctx context.Context, dir datadir.Dir, path, server string, force bool, terminal *os.File) (res transfer.Result, err error) {
	b := bar(terminal, "pull "+path)
	defer func() { b.End(err == nil) }()
	o := s.onDemand(dir, b)
	o.Create = func(ctx context.Context, rp names.RepoPath) (store.Repo, func() error, error) {
		r, _, err := s.CreateRepo(ctx, rp.String(), false, "")
		if err != nil {
			return r, nil, err
		}
		return r, func() error {
			_, err := s.DeleteRepo(context.WithoutCancel(ctx), r.FullName())
			return err
		}, nil
	}
	return o.Pull(ctx, path, server, force)
}

// HeldOn lists the repositories a server holds for this node (see
// ondemand.OnDemand.Held).
func (s *Service) HeldOn(ctx context.Context, dir datadir.Dir, server string) ([]ondemand.Held, error) {
	return s.onDemand(dir, nil).Held(ctx, server)
}

// ApproveServer lets syncs go to a server; with forwardPushes, a
// neighbour may also forward the pushes its users make to its replicas.
func (s *Service) ApproveServer(ctx context.Context, name string, forwardPushes bool) error {
	if err := names.Check(names.User, name); err != nil {
		return fmt.Errorf("server name: %w", err)
	}
	if err := s.notANode(ctx, name); err != nil {
		return err
	}
	return s.Store.ApproveServer(ctx, s.Actor, name, forwardPushes)
}

// notANode refuses a server command on a node of the cluster: nodes know
// each other from the shared database, are made by init and are not
// backups or neighbours to add, set, approve or remove.
func (s *Service) notANode(ctx context.Context, name string) error {
	node, err := s.Store.IsNodeName(ctx, name)
	if err != nil {
		return err
	}
	if node {
		return fmt.Errorf("%s is a node of this cluster, not a backup or neighbour (node list shows it; init --node-name makes nodes)", name)
	}
	return nil
}
