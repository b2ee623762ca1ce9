package gateway

import (
	"context"
	"fmt"
	"strconv"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/hook"
	"cpm/internal/store"
)

// Fence says whether this cluster node's lease holds now (lease.Keeper).
type Fence interface{ Held() bool }

// fenced refuses every user session while this node of a cluster cannot
// prove its lease: it might no longer be the primary of what it serves,
// and its copies might be behind one that took over. Sessions between
// nodes are not fenced here: the database gates them.
func (g *Gateway) fenced() error {
	if g.Fence == nil || g.Fence.Held() {
		return nil
	}
	g.Metrics.sessionFenced()
	return retry(store.ErrFenced, "%v", store.ErrFenced)
}

// placeHere checks a session another node relayed here against where the
// repository lives now: a write only on its primary, a read on its
// primary or where the copy holds every accepted push. A node that lost
// the primary since the relaying node looked refuses (and the client
// tries again, reaching the new primary).
func placeHere(cmd command.Command, p store.Placement, self string, repo string) error {
	if !p.Clustered() || p.PrimaryIs(self) || (!writes(cmd) && p.Current()) {
		return nil
	}
	return retry(store.ErrNotPrimary, "%s: %v", repo, store.ErrNotPrimary)
}

// epochEnv is the variable that tells cpm-hook under which epoch of the
// repository the session's write was accepted (none outside a cluster).
func epochEnv(p store.Placement) string {
	if !p.Clustered() {
		return ""
	}
	return hook.EnvEpoch + "=" + strconv.FormatInt(p.Epoch, 10)
}

// placement reads where the session's repository lives, on a cluster
// node for a repository of the cluster (not a neighbour's replica); the
// zero Placement otherwise.
func (g *Gateway) placement(ctx context.Context, grant access.Grant) (store.Placement, error) {
	if g.Self == "" || grant.Origin != "" {
		return store.Placement{}, nil
	}
	p, err := g.Store.Placement(ctx, g.Self, grant.Repo.Org, grant.Repo.Repo)
	if err != nil {
		return store.Placement{}, &failure{line: "cpm: internal error; try again later",
			err: fmt.Errorf("placement of %s: %w", grant.Repo, err)}
	}
	return p, nil
}
