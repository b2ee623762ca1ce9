package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"cpm/internal/command"
	"cpm/internal/replicate"
)

// servePeer runs a cpm-peer command for an approved neighbour. A
// neighbour's key runs these and nothing else, and nobody else runs them.
func (g *Gateway) servePeer(ctx context.Context, s Session, cmd command.Command) outcome {
	o := outcome{verb: cmd.Verb.String(), decision: "deny", status: 1}
	if cmd.Repo.Org != "" {
		o.repo = cmd.Repo.String()
	}
	switch {
	case s.Identity.Peer == "":
		fmt.Fprintln(s.Stderr, "cpm: cpm-peer commands are for approved neighbour nodes")
		return o
	case !cmd.Verb.IsPeer():
		fmt.Fprintln(s.Stderr, "cpm: this key delivers replicas; it runs cpm-peer commands only")
		return o
	case g.Peers == nil:
		fmt.Fprintln(s.Stderr, "cpm: this node does not take replicas")
		return o
	}
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
	case command.PeerRekey:
		err = g.Peers.Rekey(ctx, origin, s.Stdin)
	case command.PeerWant:
		if g.SendToPeer == nil {
			err = fmt.Errorf("this node does not send on request")
			break
		}
		var res replicate.Result
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
		o.decision = "allow"
		o.status = g.run(ctx, s, c, o.repo)
		return o
	}
	if err != nil {
		fmt.Fprintf(s.Stderr, "cpm: %v\n", err)
		o.decision = "error"
		return o
	}
	o.decision, o.status = "allow", 0
	return o
}
