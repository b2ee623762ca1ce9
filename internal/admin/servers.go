package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/peer"
	"cpm/internal/remote"
	"cpm/internal/replica"
	"cpm/internal/replicate"
	"cpm/internal/store"
	"cpm/internal/targetstate"
	"cpm/internal/wake"
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

var fingerprintRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

var authorizedKeysRe = regexp.MustCompile(`^[A-Za-z0-9._/~-]{1,255}$`)

// check validates the scope and turns it into the store's terms.
func (sc ServerScope) check() (store.ServerSettings, error) {
	var set store.ServerSettings
	if sc.Repos != nil {
		if err := replicate.CheckRepoPatterns(*sc.Repos); err != nil {
			return set, err
		}
		v := strings.Join(replicate.SplitPatterns(*sc.Repos), ",")
		set.RepoPatterns = &v
	}
	if sc.Refs != nil {
		if err := replicate.CheckRefPatterns(*sc.Refs); err != nil {
			return set, err
		}
		v := strings.Join(replicate.SplitPatterns(*sc.Refs), ",")
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
	return srv, s.WriteKnownHosts(ctx, dir)
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
		replicate.NewSyncer(dir, s.Disk).Remote.CloseMasters(name)
		if err := s.WriteKnownHosts(ctx, dir); err != nil {
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
	if err := s.Store.RemoveServer(ctx, s.Actor, name); err != nil {
		return err
	}
	// A connection made to it must not serve a server added next under
	// the same name (ControlPersist would keep it for 30 s).
	replicate.NewSyncer(dir, s.Disk).Remote.CloseMasters(name)
	// A removed neighbour's replicas are no longer served here: their
	// permissions would never be updated again.
	if err := replica.New(dir.Peers()).Forget(name); err != nil {
		return err
	}
	return s.WriteKnownHosts(ctx, dir)
}

// WriteKnownHosts writes DATA/known_hosts from the store: one line per
// server, under its HostKeyAlias. The workers call it at start, so a data
// dir whose pins were written per host:port gets them per server.
func (s *Service) WriteKnownHosts(ctx context.Context, dir datadir.Dir) error {
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return err
	}
	var pins []remote.Pinned
	for _, srv := range servers {
		pins = append(pins, remote.Pinned{Name: srv.Name, HostKey: srv.HostKey})
	}
	return remote.WriteKnownHosts(dir.KnownHosts(), pins)
}

// ServerStatus is a server with its derived state, as server list shows it.
type ServerStatus struct {
	store.Server
	State      string  `json:"state"`
	Cause      string  `json:"cause,omitempty"`
	Fix        string  `json:"fix,omitempty"`
	Pending    int     `json:"pending"`
	LagSeconds float64 `json:"lag_seconds"`
	status     targetstate.Status
}

// Line is the state in one line: "ok", "blocked: CAUSE".
func (s ServerStatus) Line() string { return s.status.String() }

// ServerStatuses lists every server with its state.
func (s *Service) ServerStatuses(ctx context.Context) ([]ServerStatus, error) {
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ServerStatus, 0, len(servers))
	now := time.Now()
	for _, srv := range servers {
		st := targetstate.Of(srv, jobs, now)
		out = append(out, ServerStatus{Server: srv, State: st.State.String(), Cause: st.Cause, Fix: st.Fix,
			Pending: st.Pending, LagSeconds: st.Lag.Seconds(), status: st})
	}
	return out, nil
}

// Check is what `server check` reports.
type Check struct {
	Server string     `json:"server"`
	Role   store.Role `json:"role"`
	// A backup: its tools, free space, and whether its path is writable.
	Rsync    string `json:"rsync,omitempty"`
	Git      string `json:"git,omitempty"`
	FreeKiB  int64  `json:"free_kib,omitempty"`
	Writable bool   `json:"writable,omitempty"`
	// A neighbour: who answers, and how fast.
	Node    string  `json:"node,omitempty"`
	Version string  `json:"version,omitempty"`
	PingMS  float64 `json:"ping_ms,omitempty"`
	// Either: its state (targetstate), and how far behind its replicas are.
	State string `json:"state"`
	Cause string `json:"cause,omitempty"`
	Fix   string `json:"fix,omitempty"`
	// Unblocked is the reason the server was blocked for, when this check
	// passed and lifted the block.
	Unblocked  string    `json:"unblocked,omitempty"`
	Pending    int       `json:"pending"`
	LagSeconds float64   `json:"lag_seconds"`
	LastSync   time.Time `json:"last_sync,omitzero"`
}

// CheckServer connects with the pinned key and reports on the server: a
// backup's tools, free space and writable path; a neighbour's node name,
// version and round trip; for both, the replication lag.
func (s *Service) CheckServer(ctx context.Context, dir datadir.Dir, name string) (Check, error) {
	srv, err := s.Store.ServerByName(ctx, name)
	if err != nil {
		return Check{}, err
	}
	c := Check{Server: srv.Name, Role: srv.Role}
	t := replicate.TargetOf(srv)
	env := replicate.NewSyncer(dir, s.Disk).Remote
	if t.Peer {
		err = checkNeighbor(ctx, env, t, &c)
	} else {
		err = checkBackup(ctx, env, t, &c)
	}
	if err != nil {
		return c, err
	}
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return c, err
	}
	st := targetstate.Of(srv, jobs, time.Now())
	if st.State == targetstate.Blocked {
		// The server answers as it should now: whatever blocked it is fixed.
		if err := s.Store.UnblockServer(ctx, s.Actor, srv.Name, srv.BlockedReason); err != nil {
			return c, err
		}
		c.Unblocked = srv.BlockedReason
		srv.BlockedReason = ""
		wake.Retry(dir.WakeSocket())
		st = targetstate.Of(srv, jobs, time.Now())
	}
	c.State, c.Cause, c.Fix = st.State.String(), st.Cause, st.Fix
	c.Pending, c.LagSeconds, c.LastSync = st.Pending, st.Lag.Seconds(), st.LastSync
	return c, nil
}

func checkBackup(ctx context.Context, env remote.Env, t remote.Target, c *Check) error {
	p := remote.Quote(t.Path)
	out, err := env.Run(ctx, t,
		"echo rsync=$(rsync --version 2>/dev/null | head -n1); echo git=$(git --version 2>/dev/null); "+
			"mkdir -p "+p+" 2>/dev/null; echo free=$(df -Pk "+p+" | awk 'NR==2 {print $4}'); "+
			"if test -w "+p+"; then echo writable=yes; else echo writable=no; fi")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "rsync":
			c.Rsync = v
		case "git":
			c.Git = v
		case "free":
			c.FreeKiB, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case "writable":
			c.Writable = v == "yes"
		}
	}
	return nil
}

// checkNeighbor asks the node who it is twice: the first call sets up
// the (multiplexed) connection, the second measures a round trip.
func checkNeighbor(ctx context.Context, env remote.Env, t remote.Target, c *Check) error {
	var out []byte
	var err error
	for range 2 {
		start := time.Now()
		if out, err = env.Run(ctx, t, "cpm-peer hello"); err != nil {
			if re := (*remote.Error)(nil); errors.As(err, &re) && strings.Contains(re.Stderr, "Permission denied") {
				return fmt.Errorf("%s does not accept this node: on %s, register it (cpm-admin neighbor discover --add, or server add --peer-key with this node's server pubkey) and approve it", t.Name, t.Name)
			}
			return err
		}
		c.PingMS = float64(time.Since(start).Microseconds()) / 1000
	}
	var h peer.Hello
	if err := json.Unmarshal(out, &h); err != nil {
		return fmt.Errorf("%s: not a cpm node's answer: %w", t.Name, err)
	}
	c.Node, c.Version = h.Name, h.Version
	return nil
}

// PublicKey is cpm's replication key, to install on targets.
func PublicKey(dir datadir.Dir) (string, error) {
	b, err := os.ReadFile(dir.ReplicationKey() + ".pub")
	if err != nil {
		return "", fmt.Errorf("replication key: %w (run cpm-admin init)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SyncPush copies ORG/REPO to a server now and records the verified result.
func (s *Service) SyncPush(ctx context.Context, dir datadir.Dir, path, server string, progress *os.File) (replicate.Result, error) {
	r, srv, err := s.repoAndServer(ctx, path, server)
	if err != nil {
		return replicate.Result{}, err
	}
	syncer := replicate.NewSyncer(dir, s.Disk)
	syncer.Progress = progress
	if srv.Role == store.Neighbor {
		// Permissions travel before the repository, never after it.
		pub := &replicate.Publisher{Store: s.Store, Syncer: syncer}
		if _, err := pub.Ensure(ctx, srv); err != nil {
			return replicate.Result{}, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, err)
		}
	}
	job, jerr := s.Store.JobFor(ctx, r.ID, srv.ID)
	res, err := syncer.Sync(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, replicate.TargetOf(srv), true)
	if err != nil {
		return res, fmt.Errorf("sync %s to %s: %w", r.FullName(), srv.Name, err)
	}
	if jerr == nil {
		s.Store.Done(ctx, job, job.Generation, res.Fingerprint, res.Bytes)
	}
	return res, s.Store.Record(ctx, s.Actor, "sync.push", r.FullName(), map[string]any{"server": srv.Name, "bytes": res.Bytes})
}

// repoAndServer resolves the ORG/REPO and server a sync command names.
func (s *Service) repoAndServer(ctx context.Context, path, server string) (store.Repo, store.Server, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Repo{}, store.Server{}, err
	}
	r, err := s.Store.Repo(ctx, rp.Org, rp.Repo)
	if err != nil {
		return store.Repo{}, store.Server{}, err
	}
	srv, err := s.Store.ServerByName(ctx, server)
	return r, srv, err
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
	Deep     *replicate.Damage
	Repaired *replicate.Damage
}

// SyncVerify compares the refs of ORG/REPO with its replica on a server,
// and the object files: by name and size, or by content when deep. With
// repair, it sends again what is missing or damaged and checks again.
func (s *Service) SyncVerify(ctx context.Context, dir datadir.Dir, path, server string, deep, repair bool) (Verification, error) {
	r, srv, err := s.repoAndServer(ctx, path, server)
	if err != nil {
		return Verification{}, err
	}
	local, err := s.Disk.Open(r.Org, r.Name)
	if err != nil {
		return Verification{}, err
	}
	t := replicate.TargetOf(srv)
	rp := names.RepoPath{Org: r.Org, Repo: r.Name}
	snap, err := replicate.TakeSnapshot(ctx, local)
	if err != nil {
		return Verification{}, err
	}
	snap = snap.Only(t.Refs)
	syncer := replicate.NewSyncer(dir, s.Disk)
	v := Verification{Repo: r.FullName(), Server: srv.Name, Local: snap.Fingerprint}
	got, err := replicate.RemoteFingerprint(ctx, syncer.Remote, t, rp)
	var re *remote.Error
	switch {
	case errors.As(err, &re) && re.Code == 1:
		// git on the server could not read the refs: an object they name
		// is gone. The object check below says which.
		v.RemoteError = oneLine(re.Stderr)
	case err != nil:
		return v, err
	default:
		v.Remote, v.RefsMatch = got, got == snap.Fingerprint
	}
	if !deep {
		v.MissingObjects, err = syncer.Missing(ctx, rp, t)
	} else {
		var d replicate.Damage
		if d, err = syncer.Check(ctx, rp, t, true); err == nil {
			v.Deep, v.MissingObjects = &d, int64(len(d.Missing))
		}
	}
	if err != nil {
		return v, err
	}
	if repair && (v.MissingObjects > 0 || (v.Deep != nil && !v.Deep.OK())) {
		after, _, err := syncer.Repair(ctx, rp, t, deep)
		if err != nil {
			return v, err
		}
		v.Repaired = &after
		// With its objects back, the replica's refs can be read again.
		if got, err := replicate.RemoteFingerprint(ctx, syncer.Remote, t, rp); err == nil {
			v.Remote, v.RemoteError, v.RefsMatch = got, "", got == snap.Fingerprint
		}
	}
	if deep {
		result := v.Deep.String()
		if v.Repaired != nil {
			result = "repaired: " + result
			if !v.Repaired.OK() {
				result = "not repaired: " + v.Repaired.String()
			}
		}
		if job, err := s.Store.JobFor(ctx, r.ID, srv.ID); err == nil {
			s.Store.SetDeepCheck(ctx, job.RepoID, job.ServerID, time.Now(), result)
		}
	}
	return v, s.Store.Record(ctx, s.Actor, "sync.verify", r.FullName(), map[string]any{"server": srv.Name, "deep": deep, "repair": repair})
}

// SyncPull copies ORG/REPO from a server into the local repository,
// refusing to drop local commits unless force is set. The result then
// replicates to every other target.
//
// From a neighbour, a repository that is not this node's own is the
// neighbour's: it is asked to send it now (its replica here is refreshed
// with the neighbour's metadata first), as a push there would.
func (s *Service) SyncPull(ctx context.Context, dir datadir.Dir, path, server string, force bool, progress *os.File) (replicate.Result, error) {
	if res, asked, err := s.pullFromOrigin(ctx, dir, path, server); asked {
		return res, err
	}
	r, srv, err := s.repoAndServer(ctx, path, server)
	if err != nil {
		return replicate.Result{}, err
	}
	syncer := replicate.NewSyncer(dir, s.Disk)
	syncer.Progress = progress
	res, err := syncer.Pull(ctx, names.RepoPath{Org: r.Org, Repo: r.Name}, replicate.TargetOf(srv), force)
	if err != nil {
		return res, fmt.Errorf("pull %s from %s: %w", r.FullName(), srv.Name, err)
	}
	if err := s.Store.Record(ctx, s.Actor, "sync.pull", r.FullName(), map[string]any{"server": srv.Name, "force": force, "bytes": res.Bytes}); err != nil {
		return res, err
	}
	if err := s.Store.MarkDirty(ctx, r.Org, r.Name); err != nil {
		return res, err
	}
	wake.Work(dir.WakeSocket())
	return res, nil
}

// pullFromOrigin asks a neighbour to send one of its own repositories
// now; asked is false when path is this node's own repository or server is
// not a neighbour.
func (s *Service) pullFromOrigin(ctx context.Context, dir datadir.Dir, path, server string) (res replicate.Result, asked bool, err error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return res, true, err
	}
	srv, err := s.Store.ServerByName(ctx, server)
	if err != nil || srv.Role != store.Neighbor {
		return res, false, nil
	}
	if _, err := s.Store.Repo(ctx, rp.Org, rp.Repo); !errors.Is(err, store.ErrNotFound) {
		return res, false, nil
	}
	out, err := replicate.NewSyncer(dir, s.Disk).Remote.Run(ctx, replicate.TargetOf(srv), "cpm-peer want "+rp.String())
	if err != nil {
		return res, true, fmt.Errorf("pull %s from %s: %w", rp, srv.Name, err)
	}
	// The answer comes from the network: a verified sync names the
	// fingerprint it verified, and nothing else will do.
	if err := json.Unmarshal(out, &res); err != nil || !fingerprintRe.MatchString(res.Fingerprint) {
		return replicate.Result{}, true, fmt.Errorf("pull %s from %s: not the answer of a verified sync", rp, srv.Name)
	}
	return res, true, nil
}

// ApproveServer lets syncs go to a server.
func (s *Service) ApproveServer(ctx context.Context, name string) error {
	if err := names.Check(names.User, name); err != nil {
		return fmt.Errorf("server name: %w", err)
	}
	return s.Store.ApproveServer(ctx, s.Actor, name)
}
