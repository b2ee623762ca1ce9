package gateway

import (
	"context"
	"fmt"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/store"
)

// relays decides where a session on a repository of a cluster is
// served: false here, true on the repository's primary, through this
// node (self). Outside a cluster, on the primary itself, and for a
// session another node relayed here (no loops) it is here. Writes (a
// push, an LFS upload session with its locks, a merge) go to the
// primary; reads are served here when this node's copy holds every
// accepted push, and by the primary otherwise, so that a fetch right
// after a push sees it through any node.
func relays(cmd command.Command, p store.Placement, self string, relayed bool) bool {
	if self == "" || relayed || !p.Clustered() || p.PrimaryIs(self) {
		return false
	}
	if writes(cmd) {
		return true
	}
	switch cmd.Verb {
	case command.LFSTransfer, command.UploadPack, command.UploadArchive:
		return !p.Current()
	}
	return false
}

// writes reports whether the command changes the repository: a push, a
// merge, an LFS upload session (with its locks). Such a session belongs
// on the primary, and once started it runs to its end.
func writes(cmd command.Command) bool {
	switch cmd.Verb {
	case command.ReceivePack, command.Merge:
		return true
	case command.LFSTransfer:
		return cmd.Operation == "upload"
	}
	return false
}

// routeOf says whether the session is relayed to the repository's
// primary, and which node that is, with the placement it read. A
// neighbour's replica is no cluster repository: served here. A session
// another node relayed here is served here only if this node still may
// (placeHere).
func (g *Gateway) routeOf(ctx context.Context, s Session, cmd command.Command, grant access.Grant) (store.Placement, store.Server, bool, error) {
	p, err := g.placement(ctx, grant)
	if err != nil || !p.Clustered() {
		return p, store.Server{}, false, err
	}
	if s.Relayed != "" {
		// A write that found the repository handed over goes on, once.
		if err := placeHere(cmd, p, g.Self, grant.Repo.String()); err == nil || !relaysOn(cmd, s) {
			return p, store.Server{}, false, err
		}
	}
	if !relays(cmd, p, g.Self, false) {
		return p, store.Server{}, false, nil
	}
	// Where to reach it: the primary's whole row, read only to relay.
	primary, err := g.Store.ServerByName(ctx, p.Primary.Name)
	if err != nil {
		return p, store.Server{}, false, &failure{line: "cpm: internal error; try again later",
			err: fmt.Errorf("primary of %s: %w", grant.Repo, err)}
	}
	return p, primary, true, nil
}

// servedElsewhere relays the session to the repository's primary when
// routing says so (elsewhere true, with the primary's status), or fails
// it when where the repository lives cannot be read or this node may no
// longer serve it; otherwise it returns the placement the session is
// served under here.
func (g *Gateway) servedElsewhere(ctx context.Context, s Session, cmd command.Command, grant access.Grant) (store.Placement, bool, int, error) {
	p, primary, relay, err := g.routeOf(ctx, s, cmd, grant)
	if err != nil {
		return p, true, 1, err
	}
	if !relay {
		return p, false, 0, nil
	}
	status, err := g.relayOut(ctx, s, cmd, primary)
	return p, true, status, err
}
