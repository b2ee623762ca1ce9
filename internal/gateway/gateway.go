// Package gateway runs one ssh session's command for an authenticated
// key: it parses the command, authorizes it, and runs git on the
// canonical repository path. The embedded SSH server and the OpenSSH
// forced command both end here, so they behave the same.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/datadir"
	"cpm/internal/gitservice"
	"cpm/internal/names"
	"cpm/internal/peer"
	"cpm/internal/provision"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Gateway serves sessions against one data directory.
type Gateway struct {
	Access access.Checker
	// Store takes what sessions write: push-to-create, the audit rows of
	// merges and the replication queue. Decisions go through Access.
	Store   *store.Store
	Disk    repos.Root
	DataDir datadir.Dir
	Log     zerolog.Logger
	Metrics *Metrics       // may be nil
	Peers   *peer.Receiver // nil: this node takes no replicas
	// LFSMaxObjectSize caps one Git LFS upload, in bytes (0: no cap).
	LFSMaxObjectSize int64
	// Forward sends a push made to a replica to its origin; nil: such
	// pushes are refused with the origin's URL.
	Forward Forwarder
	// SendToPeer syncs one of this node's repositories to a neighbour now,
	// when the neighbour asks (cpm-peer want); nil: never.
	SendToPeer func(ctx context.Context, server string, repo names.RepoPath) (transfer.Result, error)
	// Self is this node's name in its cluster ("" outside a cluster):
	// sessions on a repository whose primary is another node are routed
	// (relays) and served there through Relay.
	Self  string
	Relay Relayer
	// Fence, on a cluster node, says whether its lease holds: while it
	// does not, every user session is refused. Nil outside a cluster.
	Fence Fence
	// Gate holds write sessions back while this node hands a repository
	// over (repo move, node drain); nil: no gate.
	Gate *WriteGate
	// Tokens identifies a relayed HTTP session's access token afresh
	// (a token revoked a moment ago is refused); nil: no tokens.
	Tokens TokenIdentifier
	// HTTPURL is the public base URL of the HTTP server ("" when it is
	// off), and LFSTokens makes short-lived tokens for it: with both set,
	// git-lfs-authenticate answers with the LFS HTTP API's address.
	HTTPURL   string
	LFSTokens LFSTokens
	// HTTPURLUnsafe says why the HTTP server has no base URL a token may
	// be handed for (config.HTTP.TokenURL); git-lfs-authenticate refuses
	// with it.
	HTTPURLUnsafe error
	// LFSHTTP serves Git LFS HTTP API requests other nodes relay here;
	// nil: they are refused.
	LFSHTTP RelayedLFS
}

// TokenIdentifier finds whom an HTTP access token speaks for
// (access.Checker.IdentifyToken).
type TokenIdentifier interface {
	IdentifyToken(ctx context.Context, secret string) (access.Identity, error)
}

// Session is one command of one identity: an ssh key or certificate,
// an HTTP access token, or anonymous (git://, HTTP without credentials).
type Session struct {
	Identity    access.Identity
	Command     string // as the client sent it
	GitProtocol string // the client's GIT_PROTOCOL, "" if none
	RemoteAddr  string
	// Linger is what a push runs in instead of the session's context: it
	// must outlive a client that hangs up once it has its push report
	// (go-git), or post-receive dies with the connection — no audit row,
	// no repository hooks, no replication. It still ends, at the
	// connection's maximum time or when shutdown's grace is over. Nil:
	// the session's context.
	Linger context.Context
	// Draining, when set, ends once the server stops taking sessions: a
	// long-lived session (cpm-peer receive-pack --serve) then ends at its
	// next boundary rather than hold the shutdown for its grace.
	Draining context.Context
	// Relayed names the node of this cluster that relayed the session
	// here ("" for a client connected here): it is served here, and its
	// log event and audit rows name that node as via.
	Relayed string
	// Hops is how many nodes relayed the session so far (relay header).
	Hops int
	// Stateless is one smart HTTP request's part of a fetch or push
	// (gitservice.Advertise or RPC); "" for a whole ssh session.
	Stateless gitservice.Stateless
	// Transport names how the client came ("http"; "" for ssh), for the
	// session's log event and the push's audit row.
	Transport string
	// Token is the access token an HTTP client authenticated with, kept
	// only to relay the session (the primary identifies it afresh);
	// never logged.
	Token string
	// LFSURL is set on a Git LFS HTTP API request relayed to the
	// primary (relay mode lfs-http): the base URL the client used.
	LFSURL string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// epoch is CPM_EPOCH=N for git on a repository of the cluster: the
	// epoch its write is accepted under ("" outside a cluster).
	epoch string
}

// actor is who the session's audit rows name: the user, from where, and
// through which node.
func (s Session) actor() store.Actor {
	return store.Actor{Name: s.Identity.Name(), RemoteAddr: s.RemoteAddr, Via: s.Relayed, Transport: s.Transport}
}

// lingering is the context for what must outlive a client that hangs up:
// Linger when set, else ctx.
func (s Session) lingering(ctx context.Context) context.Context {
	if s.Linger != nil {
		return s.Linger
	}
	return ctx
}

// result is what a session did: err nil means it was served, and status
// is then the command's own exit status.
type result struct {
	verb, repo string
	status     int
	err        error
	// relayed: status is the primary's, which for a stateless request
	// may stand for its refusal (relayedExit); a local git's never does.
	relayed bool
}

// Serve runs the session and returns its exit status.
func (g *Gateway) Serve(ctx context.Context, s Session) int {
	status, _ := g.Request(ctx, s)
	return status
}

// Request is Serve for a transport that answers a refusal in its own
// terms (HTTP's status codes): it also returns why the session was
// refused or failed before git ran (nil once it was served), here or,
// for a stateless request relayed to the primary, there. The refusal's
// line still goes to s.Stderr.
func (g *Gateway) Request(ctx context.Context, s Session) (int, error) {
	start := time.Now()
	in := &gitservice.CountingReader{R: s.Stdin}
	out := &gitservice.CountingWriter{W: s.Stdout}
	s.Stdin, s.Stdout = in, out
	g.Metrics.sessionStarted()
	r := g.serve(ctx, s)
	status := g.report(s, r, in.N(), out.N(), time.Since(start))
	if r.err == nil && r.relayed && s.Stateless != "" {
		return status, relayedRefusal(r.status)
	}
	return status, r.err
}

func (g *Gateway) serve(ctx context.Context, s Session) result {
	if s.Command == "" {
		return result{verb: "shell", err: &refusal{line: fmt.Sprintf(
			"Hi %s! You've authenticated to cpm, which does not provide shell access.", s.Identity.Name())}}
	}
	cmd, err := command.Parse(s.Command)
	if err != nil {
		return result{verb: "invalid", err: refuse("%v", err)}
	}
	if s.Identity.Peer != "" || cmd.Verb.IsPeer() {
		return g.servePeer(ctx, s, cmd)
	}
	r := result{verb: cmd.Verb.String()}
	if r.err = g.admit(s, cmd); r.err != nil {
		return r
	}
	if t := s.Identity.Token; t != nil && t.Kind == store.TokenLFS {
		// git-lfs-authenticate's token is handed out for the LFS API
		// (OpenLFS), with no say on git's pushes or fetches.
		r.repo = cmd.Repo.String()
		r.err = &access.Error{Kind: access.Denied, Repo: cmd.Repo.String(), Reason: "a git-lfs-authenticate token serves the Git LFS API only"}
		return r
	}
	switch cmd.Verb {
	case command.Whoami:
		fmt.Fprintln(s.Stdout, s.Identity.Name())
		return r
	case command.Info:
		r.err = g.info(ctx, s)
		return r
	case command.LFSAuthenticate:
		r.repo = cmd.Repo.String()
		r.err = g.lfsAuthenticate(ctx, s, cmd)
		return r
	}
	return g.serveRepo(ctx, s, cmd)
}

// serveRepo serves a command on a repository: decided, relayed to its
// primary or run here under the write gate.
func (g *Gateway) serveRepo(ctx context.Context, s Session, cmd command.Command) result {
	r := result{verb: cmd.Verb.String(), repo: cmd.Repo.String()}
	grant, err := g.authorize(ctx, s, cmd)
	if errors.Is(err, errCreateOnPost) {
		r.err = advertiseNew(s)
		return r
	}
	var ro *access.Error
	if cmd.Verb == command.ReceivePack && errors.As(err, &ro) && ro.Kind == access.ReadOnly {
		r.status, r.err = g.forwardOut(ctx, s, cmd, ro)
		return r
	}
	noWrite := ""
	if cmd.Verb == command.LFSTransfer {
		grant, noWrite, err = g.readOnlyLFS(ctx, s, cmd, grant, err)
	}
	if err != nil {
		r.err = err
		return r
	}
	r.repo = grant.Repo.String()
	p, elsewhere, status, err := g.servedElsewhere(ctx, s, cmd, grant)
	if elsewhere {
		r.status, r.err, r.relayed = status, err, err == nil
		return r
	}
	// A write holds its repository's gate, and takes its epoch from the
	// placement read under it: a handover never slips in between.
	p, release, elsewhere, status, err := g.holdWrite(ctx, s, cmd, grant, p)
	if elsewhere {
		r.status, r.err, r.relayed = status, err, err == nil
		return r
	}
	defer release()
	s.epoch = epochEnv(p)
	dir, err := g.Disk.Open(grant.Repo.Org, grant.Repo.Repo)
	if err != nil {
		r.err = &failure{line: "cpm: repository " + cmd.Repo.String() + " not found", err: err}
		return r
	}
	switch cmd.Verb {
	case command.Merge:
		r.err = g.merge(ctx, s, cmd, dir, grant.Repo)
		return r
	case command.LFSTransfer:
		r.err = g.serveLFS(ctx, s, cmd, grant, dir, noWrite)
		return r
	}
	r.status, r.err = g.runGit(ctx, s, cmd.Verb, dir, r.repo)
	return r
}

// authorize decides the command's access to its repository. A push
// (or the LFS upload that precedes it) to a repository that does not
// exist creates it when the key's owner may (org owners and admins), and
// is then decided again; an HTTP push's advertisement (a GET) creates
// nothing (errCreateOnPost).
func (g *Gateway) authorize(ctx context.Context, s Session, cmd command.Command) (access.Grant, error) {
	pushes := cmd.Verb == command.ReceivePack || (cmd.Verb == command.LFSTransfer && cmd.Operation == "upload")
	action := authz.Read
	if pushes || cmd.Verb == command.Merge {
		action = authz.Push
	}
	grant, err := g.Access.Authorize(ctx, s.Identity, cmd.Repo, action)
	var e *access.Error
	if !pushes || !errors.As(err, &e) || !e.Creatable {
		return grant, err
	}
	if s.Stateless == gitservice.Advertise {
		return access.Grant{}, errCreateOnPost
	}
	if err := g.create(ctx, s, cmd); err != nil {
		return access.Grant{}, &failure{line: "cpm: could not create " + cmd.Repo.String(), err: err}
	}
	// From the database: a cache may not have heard of the creation yet
	// (another node's, racing this one).
	return g.Access.Uncached().Authorize(ctx, s.Identity, cmd.Repo, action)
}

func (g *Gateway) create(ctx context.Context, s Session, cmd command.Command) error {
	actor := s.actor()
	_, _, err := provision.Repo(ctx, g.Store, g.Disk, actor, cmd.Repo.String(), false, "")
	if errors.Is(err, store.ErrExists) {
		return nil // created by a concurrent push
	}
	if err != nil {
		return fmt.Errorf("create %s on push: %w", cmd.Repo, err)
	}
	return nil
}

// info lists the repositories the key may read, with its permission.
func (g *Gateway) info(ctx context.Context, s Session) error {
	all, err := g.Access.Readable(ctx, s.Identity)
	if err != nil {
		return fmt.Errorf("list readable repositories: %w", err)
	}
	fmt.Fprintf(s.Stdout, "hello %s, this is cpm; you may read:\n\n", s.Identity.Name())
	for _, l := range all {
		if l.Origin != "" {
			fmt.Fprintf(s.Stdout, " %-5s  %s/%s  (replica of %s)\n", l.Perm, l.Org, l.Repo, l.Origin)
			continue
		}
		fmt.Fprintf(s.Stdout, " %-5s  %s/%s\n", l.Perm, l.Org, l.Repo)
	}
	if len(all) == 0 {
		fmt.Fprintln(s.Stdout, " (no repositories)")
	}
	return nil
}
