package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// A forwarded push starts with one line from the origin: "ok" (the
// push follows, git's own protocol from here), "deny MESSAGE" (the
// origin's decision, for the user), or "off REASON" (the origin takes no
// forwarded pushes from this node: the replica's read-only refusal
// stands).
const (
	forwardOK   = "ok"
	forwardDeny = "deny "
	forwardOff  = "off "
)

// Forwarder sends a push made to one of this node's replicas to its
// origin over ssh, and returns the origin's first line and the stream of
// the rest; closing it ends the push (wait for the origin to finish).
type Forwarder func(ctx context.Context, origin string, repo names.RepoPath, fingerprint string, stdin io.Reader) (ForwardedPush, error)

// ForwardedPush is a running forward to an origin.
type ForwardedPush interface {
	io.Reader // the origin's output, after the first line
	// Wait waits for the origin to finish (having synced this node) and
	// returns its exit status.
	Wait() (int, error)
}

// forwardOut tries to forward a push refused as read-only to the
// replica's origin; it returns the refusal unchanged when the origin
// takes no forwarded pushes from this node.
func (g *Gateway) forwardOut(ctx context.Context, s Session, cmd command.Command, ro *access.Error) (int, error) {
	if g.Forward == nil || ro.Origin == "" || s.Identity.Fingerprint == "" {
		return 1, ro
	}
	fwd, err := g.Forward(ctx, ro.Origin, cmd.Repo, s.Identity.Fingerprint, s.Stdin)
	if err != nil {
		g.Log.Warn().Err(err).Str("repo", cmd.Repo.String()).Str("target", ro.Origin).Msg("forward push")
		return 1, ro
	}
	r := bufio.NewReader(fwd)
	line, err := r.ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	switch {
	case err == nil && line == forwardOK:
	case err == nil && strings.HasPrefix(line, forwardDeny):
		fwd.Wait()
		return 1, &refusal{line: strings.TrimPrefix(line, forwardDeny)}
	default:
		fwd.Wait()
		g.Log.Info().Str("repo", cmd.Repo.String()).Str("target", ro.Origin).Str("reason", strings.TrimPrefix(line, forwardOff)).Msg("push not forwarded")
		return 1, ro
	}
	if _, err := io.Copy(s.Stdout, r); err != nil && ctx.Err() == nil {
		fwd.Wait()
		return 1, fmt.Errorf("forward push to %s: %w", ro.Origin, err)
	}
	status, err := fwd.Wait()
	if err != nil {
		return status, fmt.Errorf("forward push to %s: %w", ro.Origin, err)
	}
	return status, nil
}

// forwardIn performs a push that a neighbour approved for forwarding
// took for its replica, as the user whose key it names, then syncs that
// neighbour before it returns, so that its replica has the new refs when
// the user's push command ends. The neighbour vouches for who pushed, and
// for nothing more: the push carries write at most (access.Identity.Via),
// and only to a repository the neighbour holds as a replica in its scope.
func (g *Gateway) forwardIn(ctx context.Context, s Session, cmd command.Command) (int, error) {
	peer := s.Identity.Peer
	srv, err := g.Store.ServerByName(ctx, peer)
	if err != nil || !srv.ForwardPushes {
		fmt.Fprintln(s.Stdout, forwardOff+peer+" is not approved to forward pushes here")
		return 1, refuse("%s is not approved to forward pushes", peer)
	}
	id, err := g.Access.Identify(ctx, cmd.Key)
	if err != nil || id.Peer != "" || id.Remote != "" {
		// Never a user this node does not know, whoever the neighbour says.
		fmt.Fprintln(s.Stdout, forwardDeny+"cpm: key "+cmd.Key+" is not registered at the origin")
		return 1, refuse("forwarded key %s is not registered here", cmd.Key)
	}
	// What B holds is what A sent it, so B learns nothing here; missing,
	// outside the scope and never delivered get one answer, so that this
	// check is no oracle for which repositories exist.
	if err := g.heldBy(ctx, srv, cmd.Repo); err != nil {
		fmt.Fprintln(s.Stdout, forwardDeny+clientLine(err))
		return 1, err
	}
	if err := g.onPrimary(ctx, cmd.Repo); err != nil {
		// Made here, the push would land on a copy that the primary's
		// next sync overwrites: the neighbour's read-only refusal stands.
		fmt.Fprintln(s.Stdout, forwardOff+clientLine(err))
		return 1, err
	}
	id.Via = peer
	grant, err := g.Access.Authorize(ctx, id, cmd.Repo, authz.Push)
	if err != nil {
		fmt.Fprintln(s.Stdout, forwardDeny+clientLine(err))
		return 1, err
	}
	dir, err := g.Disk.Open(grant.Repo.Org, grant.Repo.Repo)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(s.Stdout, forwardOK)
	user := Session{Identity: id, GitProtocol: s.GitProtocol, RemoteAddr: s.RemoteAddr,
		Linger: s.Linger, Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr}
	status, err := g.runGit(ctx, user, command.ReceivePack, dir, grant.Repo.String())
	if err != nil || status != 0 || g.SendToPeer == nil {
		return status, err
	}
	if _, err := g.SendToPeer(ctx, peer, grant.Repo); err != nil {
		// The push is made; the neighbour gets it with the next sync.
		g.Log.Warn().Err(err).Str("repo", grant.Repo.String()).Str("target", peer).Msg("sync after a forwarded push")
	}
	return 0, nil
}

// onPrimary refuses, in a cluster, what only a repository's primary may
// do (take a neighbour's forwarded push, send it a replica it wants),
// when this node is not that primary.
func (g *Gateway) onPrimary(ctx context.Context, repo names.RepoPath) error {
	if g.Self == "" {
		return nil
	}
	p, err := g.Store.Placement(ctx, g.Self, repo.Org, repo.Repo)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a missing repository is heldBy's and replicatedTo's answer
	}
	if err != nil {
		return &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("placement of %s: %w", repo, err)}
	}
	if !p.Clustered() || p.PrimaryIs(g.Self) {
		return nil
	}
	return refuse("%s: this node is not its primary (%s); ask the primary", repo, p.Primary.Name)
}

// heldBy refuses a forwarded push unless srv holds repo as a replica:
// it exists, is inside srv's scope, and was synced there at least once.
// Each "no" reads the same, whichever it was.
func (g *Gateway) heldBy(ctx context.Context, srv store.Server, repo names.RepoPath) error {
	notHeld := refuse("%s: not forwarded: %s holds no replica of it", repo, srv.Name)
	r, err := g.Store.Repo(ctx, repo.Org, repo.Repo)
	if errors.Is(err, store.ErrNotFound) {
		return notHeld
	}
	if err != nil {
		return &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("forwarded push to %s: %w", repo, err)}
	}
	if transfer.CheckScope(srv, r.FullName()) != nil {
		return notHeld
	}
	job, err := g.Store.JobFor(ctx, r.ID, srv.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (job.LastSuccessAt.IsZero() || job.Fingerprint == "")) {
		return notHeld
	}
	if err != nil {
		return &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("forwarded push to %s: %w", repo, err)}
	}
	return nil
}
