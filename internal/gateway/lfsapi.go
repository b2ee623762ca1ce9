package gateway

import (
	"context"
	"fmt"
	"time"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/lfs"
	"cpm/internal/names"
	"cpm/internal/queue"
	"cpm/internal/store"
)

// LFSRequest is one request of the Git LFS HTTP API from an identity the
// HTTP server has authenticated. It is decided as an LFS session over
// ssh is: a read for a download or a list of locks, a write (push
// access) for an upload, a verify and every lock change.
type LFSRequest struct {
	Identity   access.Identity
	Repo       names.RepoPath
	Write      bool
	RemoteAddr string
	// Relayed names the node that relayed the request here, Hops how
	// many relayed it so far (as for a git session); Token is the access
	// token the client authenticated with, kept only to relay the
	// request on (the primary identifies it afresh), never logged.
	Relayed string
	Hops    int
	Token   string
}

// LFSOpen is an allowed LFS HTTP request: the repository as its identity
// may use it, held (a write holds the repository's write gate) until
// Done.
type LFSOpen struct {
	lfs.Repo
	Name    names.RepoPath // the repository's canonical name
	g       *Gateway
	req     LFSRequest
	release func()
	start   time.Time
	done    bool
}

// OpenLFS decides req with the same steps as git-lfs-transfer over ssh
// (the node's fence, authorization with push-to-create for an upload,
// the cluster's placement and write gate) and opens the repository. A
// request this node cannot serve because the repository's primary is
// another node is refused with an *LFSElsewhere naming that node, which
// the HTTP handler relays the request to (RelayLFS). A refusal is counted and logged here; an
// opened request is when Done is called.
func (g *Gateway) OpenLFS(ctx context.Context, req LFSRequest) (*LFSOpen, error) {
	start := time.Now()
	g.Metrics.sessionStarted()
	o, err := g.openLFS(ctx, req)
	if err != nil {
		g.reportLFS(req, names.RepoPath{}, lfs.Stats{}, err, time.Since(start))
		return nil, err
	}
	o.start = start
	return o, nil
}

func (g *Gateway) openLFS(ctx context.Context, req LFSRequest) (*LFSOpen, error) {
	if err := g.fenced(); err != nil {
		return nil, err
	}
	cmd := command.Command{Verb: command.LFSTransfer, Repo: req.Repo, Operation: string(lfs.Download)}
	if req.Write {
		cmd.Operation = string(lfs.Upload)
	}
	s := Session{Identity: req.Identity, RemoteAddr: req.RemoteAddr, Hops: req.Hops, Relayed: req.Relayed, Transport: "http"}
	grant, err := g.authorize(ctx, s, cmd)
	if err != nil {
		return nil, err
	}
	p, primary, elsewhere, err := g.routeOf(ctx, s, cmd, grant)
	if err != nil {
		return nil, err
	}
	if elsewhere {
		return nil, &LFSElsewhere{Primary: primary, Repo: grant.Repo,
			err: retry(store.ErrNotPrimary, "%s: this node does not serve it now (another node of the cluster does); try again", grant.Repo)}
	}
	// The primary moving between routeOf and the gate is answered "try
	// again" (the handler has the request to relay, not the gate).
	held := s
	held.Hops = maxHops
	p, release, elsewhere, _, err := g.holdWrite(ctx, held, cmd, grant, p)
	if elsewhere {
		return nil, err
	}
	s.epoch = epochEnv(p)
	dir, err := g.Disk.Open(grant.Repo.Org, grant.Repo.Repo)
	if err != nil {
		release()
		return nil, &failure{line: "cpm: repository " + req.Repo.String() + " not found", err: err}
	}
	local := grant.Origin == ""
	o := &LFSOpen{Name: grant.Repo, g: g, req: req, release: release, Repo: lfs.Repo{
		Objects:  lfs.Objects{Dir: lfs.ObjectsDir(dir), MaxSize: g.LFSMaxObjectSize},
		User:     req.Identity.Name(),
		CanWrite: local && grant.Perm >= authz.PermWrite,
		Admin:    local && grant.Perm >= authz.PermAdmin,
	}}
	if local {
		r, err := g.Store.Repo(ctx, grant.Repo.Org, grant.Repo.Repo)
		if err != nil {
			release()
			return nil, fmt.Errorf("read %s: %w", grant.Repo, err)
		}
		o.Locks = storeLocks{st: g.Store, repoID: r.ID, repo: grant.Repo.String(), actor: s.actor()}
		o.Fence = g.lfsFence(ctx, s, grant)
	}
	return o, nil
}

// Done ends the request: it releases the write gate, queues stored
// objects for replication as a push would be, and counts and logs the
// request with what it moved and how it ended (err as the client was
// answered: nil, a refusal or a fault). Later calls do nothing.
func (o *LFSOpen) Done(ctx context.Context, st lfs.Stats, err error) {
	if o == nil || o.done {
		return
	}
	o.done = true
	o.release()
	if st.Uploaded > 0 {
		// New objects replicate like a push, even before the push that
		// refers to them; a client that left does not cancel that.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		queue.Enqueue(qctx, o.g.Store, o.g.DataDir, o.Name)
		cancel()
	}
	o.g.reportLFS(o.req, o.Name, st, err, time.Since(o.start))
}

// reportLFS writes an LFS HTTP request's log event and metrics, as
// report does for an ssh session.
func (g *Gateway) reportLFS(req LFSRequest, repo names.RepoPath, st lfs.Stats, err error, d time.Duration) {
	o := access.OutcomeOf(err)
	g.Metrics.sessionEnded("git-lfs-http", o, st.BytesUploaded, st.BytesDownloaded, d)
	ev := g.Log.Info()
	switch o {
	case access.Refused:
		ev = g.Log.Warn().Str("reason", clientLine(err))
	case access.Failed:
		ev = g.Log.Error().Err(err)
	}
	name := req.Repo.String()
	if repo.Org != "" {
		name = repo.String()
	}
	operation := "download"
	if req.Write {
		operation = "upload"
	}
	if req.Relayed != "" {
		ev = ev.Str("via", req.Relayed)
	}
	ev.Str("transport", "http").Str("user", req.Identity.Name()).Str("remote", req.RemoteAddr).
		Str("repo", name).Str("operation", operation).Str("decision", o.String()).
		Int("objects_up", st.Uploaded).Int64("bytes_up", st.BytesUploaded).
		Int("objects_down", st.Downloaded).Int64("bytes_down", st.BytesDownloaded).
		Int("refused", st.Refused).Int64("duration_ms", d.Milliseconds()).Msg("lfs")
}

// ClientLine is the one line a client is told for err, as an ssh client
// would read it on stderr ("cpm: …"): a refusal's own words, and for a
// fault no more than that one occurred.
func ClientLine(err error) string { return clientLine(err) }
