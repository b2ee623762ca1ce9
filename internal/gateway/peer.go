package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/peer"
	"cpm/internal/printable"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// servePeer runs a cpm-peer command for an approved neighbour or a node
// of this cluster. Their keys run these and nothing else, nobody else
// runs them, and each runs only its own verbs (peerMayRun).
func (g *Gateway) servePeer(ctx context.Context, s Session, cmd command.Command) result {
	r := result{verb: cmd.Verb.String()}
	if cmd.Repo.Org != "" {
		r.repo = cmd.Repo.String()
	}
	if why := peerMayRun(s.Identity, cmd.Verb); why != "" {
		r.err = refuse("%s", why)
		return r
	}
	switch {
	case cmd.Verb == command.PeerRelay:
		r.status, r.err = g.relayIn(ctx, s)
	case g.Peers == nil:
		r.err = refuse("this node does not take replicas")
	default:
		r.status, r.err = g.peerCommand(ctx, s, cmd)
	}
	return r
}

// nodeVerbs are what another node of this cluster runs here: copying to
// this node's replicas (the neighbour's copy path) and relaying its
// users' sessions. Never meta (the database is shared), rekey, forward
// or want: those are a neighbour's.
var nodeVerbs = map[command.Verb]bool{
	command.PeerHello: true, command.PeerPrepare: true, command.PeerRsyncIn: true, command.PeerRsyncOut: true,
	command.PeerRefs: true, command.PeerSpace: true, command.PeerRelay: true, command.PeerUploadPack: true,
	command.PeerReceivePack: true,
}

// peerMayRun says why id may not run verb, or "" when it may: a
// neighbour runs every cpm-peer verb but relay, a node the nodeVerbs,
// and no one else any of them.
func peerMayRun(id access.Identity, verb command.Verb) string {
	switch {
	case id.Peer == "" && verb.IsPeer():
		return "cpm-peer commands are for approved neighbour nodes"
	case id.Peer == "":
		return ""
	case !verb.IsPeer():
		return "this key delivers replicas; it runs cpm-peer commands only"
	case id.Node && !nodeVerbs[verb]:
		return verb.String() + " is not for nodes of this cluster"
	case !id.Node && (verb == command.PeerRelay || verb == command.PeerUploadPack || verb == command.PeerReceivePack):
		return verb.String() + " is for nodes of this cluster"
	}
	return ""
}

// peerCommand performs one cpm-peer verb. Its errors are shown to the
// neighbour in full: it is one of this deployment's own nodes, and the
// words are what its operator debugs with.
func (g *Gateway) peerCommand(ctx context.Context, s Session, cmd command.Command) (int, error) {
	origin := s.Identity.Peer
	from := peer.Origin{Name: origin, Node: s.Identity.Node}
	var err error
	switch cmd.Verb {
	case command.PeerHello:
		err = g.Peers.Hello(s.Stdout)
	case command.PeerMeta:
		err = g.Peers.ApplyMeta(ctx, origin, s.Stdin, s.Stdout)
	case command.PeerPrepare:
		err = g.Peers.Prepare(ctx, from, cmd.Repo)
	case command.PeerRefs:
		err = g.Peers.Refs(ctx, from, cmd.Repo, s.Stdout)
	case command.PeerSpace:
		err = g.Peers.Space(ctx, from, cmd.Repo, s.Stdout)
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
		if err = g.onPrimary(ctx, cmd.Repo); err != nil {
			break
		}
		var res transfer.Result
		if res, err = g.SendToPeer(ctx, origin, cmd.Repo); err == nil {
			err = json.NewEncoder(s.Stdout).Encode(res)
		}
	case command.PeerUploadPack:
		c, uerr := g.Peers.UploadPack(ctx, from, cmd.Repo)
		if uerr != nil {
			err = uerr
			break
		}
		return g.run(ctx, s, c)
	case command.PeerReceivePack:
		return g.receivePackIn(ctx, s, from, cmd)
	case command.PeerRsyncIn, command.PeerRsyncOut:
		c, cleanup, rerr := g.Peers.Rsync(ctx, from, cmd.Repo, cmd.Verb == command.PeerRsyncIn)
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

// receivePackIn is the replica's side of a synchronous write from the
// repository's primary (peer.Receiver.ReceivePack).
func (g *Gateway) receivePackIn(ctx context.Context, s Session, from peer.Origin, cmd command.Command) (int, error) {
	if cmd.Serve {
		between, cancel := context.WithCancel(ctx)
		defer cancel()
		if s.Draining != nil {
			defer context.AfterFunc(s.Draining, cancel)()
		}
		if err := g.Peers.ServeApply(ctx, between, from, s.Stdin, s.Stdout, g.logApplied(from.Name)); err != nil {
			return 1, &failure{line: "cpm: " + printable.Line(err.Error()), err: err}
		}
		return 0, nil
	}
	w := peer.SyncWrite{Epoch: cmd.Epoch, Generation: cmd.Generation, Fingerprint: cmd.Fingerprint}
	if cmd.Pack {
		if err := g.Peers.ApplyPack(ctx, from, cmd.Repo, w, s.Stdin); err != nil {
			return 1, &failure{line: "cpm: " + printable.Line(err.Error()), err: err}
		}
		return 0, nil
	}
	status, err := g.Peers.ReceivePack(ctx, from, cmd.Repo, w, func(c *exec.Cmd) (int, error) { return g.run(ctx, s, c) })
	if err != nil {
		return max(status, 1), &failure{line: "cpm: " + printable.Line(err.Error()), err: err}
	}
	return status, nil
}

// logApplied logs each write of a replication session from the node
// named origin: the session itself is one "session" event at its end.
func (g *Gateway) logApplied(origin string) func(peer.Applied) {
	return func(a peer.Applied) {
		ev := g.Log.Info()
		if a.Err != nil {
			ev = g.Log.Warn().Err(a.Err)
		}
		ev.Str("from", origin).Str("repo", a.Repo).Int64("epoch", a.Epoch).Int64("generation", a.Generation).
			Int64("duration_ms", a.Duration.Milliseconds()).Msg("replica write")
	}
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
