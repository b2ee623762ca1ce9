package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// servePeer runs a cpm-peer command for an approved neighbour. A
// neighbour's key runs these and nothing else, and nobody else runs them.
func (g *Gateway) servePeer(ctx context.Context, s Session, cmd command.Command) result {
	r := result{verb: cmd.Verb.String()}
	if cmd.Repo.Org != "" {
		r.repo = cmd.Repo.String()
	}
	switch {
	case s.Identity.Peer == "":
		r.err = refuse("cpm-peer commands are for approved neighbour nodes")
	case !cmd.Verb.IsPeer():
		r.err = refuse("this key delivers replicas; it runs cpm-peer commands only")
	case g.Peers == nil:
		r.err = refuse("this node does not take replicas")
	default:
		r.status, r.err = g.peerCommand(ctx, s, cmd)
	}
	return r
}

// peerCommand performs one cpm-peer verb. Its errors are shown to the
// neighbour in full: it is one of this deployment's own nodes, and the
// words are what its operator debugs with.
func (g *Gateway) peerCommand(ctx context.Context, s Session, cmd command.Command) (int, error) {
	origin := s.Identity.Peer
	var err error
	switch cmd.Verb {
	case command.PeerHello:
		err = g.Peers.Hello(s.Stdout)
	case command.PeerMeta:
		err = g.Peers.ApplyMeta(ctx, origin, s.Stdin, s.Stdout)
	case command.PeerPrepare:
		err = g.Peers.Prepare(ctx, origin, cmd.Repo)
	case command.PeerRefs:
		err = g.Peers.Refs(ctx, origin, cmd.Repo, s.Stdout)
	case command.PeerSpace:
		err = g.Peers.Space(ctx, origin, cmd.Repo, s.Stdout)
	case command.PeerRekey:
		err = g.Peers.Rekey(ctx, origin, s.Stdin)
	case command.PeerForward:
		return g.forwardIn(ctx, s, cmd)
	case command.PeerWant:
		if g.SendToPeer == nil {
			err = errors.New("this node does not send on request")
			break
		}
		if err = g.replicatedTo(ctx, origin, cmd.Repo); err != nil {
			break
		}
		var res transfer.Result
		if res, err = g.SendToPeer(ctx, origin, cmd.Repo); err == nil {
			err = json.NewEncoder(s.Stdout).Encode(res)
		}
	case command.PeerRsyncIn, command.PeerRsyncOut:
		c, cleanup, rerr := g.Peers.Rsync(ctx, origin, cmd.Repo, cmd.Verb == command.PeerRsyncIn)
		if rerr != nil {
			err = rerr
			break
		}
		defer cleanup()
		return g.run(ctx, s, c)
	}
	if err != nil {
		return 1, &failure{line: "cpm: " + printable.Line(err.Error()), err: err}
	}
	return 0, nil
}

// replicatedTo refuses a neighbour's want for a repository that is not
// replicated to it: missing and outside its scope read the same, so that
// the answer is no oracle for which repositories exist here.
func (g *Gateway) replicatedTo(ctx context.Context, peer string, repo names.RepoPath) error {
	srv, err := g.Store.ServerByName(ctx, peer)
	if err != nil {
		return fmt.Errorf("neighbour %s: %w", peer, err)
	}
	r, err := g.Store.Repo(ctx, repo.Org, repo.Repo)
	if errors.Is(err, store.ErrNotFound) || (err == nil && transfer.CheckScope(srv, r.FullName()) != nil) {
		return fmt.Errorf("%s: not found among the repositories replicated to %s", repo, peer)
	}
	return err
}
