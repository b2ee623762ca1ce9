package node

import (
	"context"
	"fmt"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/syncack"
	"cpm/internal/transfer"
)

// listenSync serves post-receive's requests to write a push into the
// repository's replica nodes before it is acknowledged (sync_replicas),
// on a node of a cluster.
func (n *Node) listenSync(ctx context.Context, syncer *transfer.Syncer) error {
	if n.Self.ID == 0 {
		return nil
	}
	// The sessions live as long as the workers: set before any of them
	// runs, closed when they stop.
	syncer.Sessions = transfer.NewSessions(syncer.Remote)
	context.AfterFunc(ctx, syncer.Sessions.Close)
	return syncack.Listen(ctx, n.Dir.SyncSocket(), n.Conf.SyncTimeout, func(ctx context.Context, req syncack.Request) syncack.Answer {
		if req.Unreplicated {
			n.Pushes.Unreplicated()
			return syncack.Answer{}
		}
		return n.syncPush(ctx, syncer, req)
	})
}

// syncPush writes the push of req into live replica nodes, all at once,
// and answers once sync_replicas of them hold it or ctx's deadline
// (sync_timeout) passed; the writes still under way go on to that
// deadline. One log event per push.
func (n *Node) syncPush(ctx context.Context, syncer *transfer.Syncer, req syncack.Request) syncack.Answer {
	need := n.Conf.SyncReplicas
	if need == 0 {
		return syncack.Answer{}
	}
	start := time.Now()
	rp, _ := names.ParseRepoPath(req.Repo) // checked by syncack
	repoID, targets, why := n.syncTargets(ctx, rp, req.Epoch)
	var acks []ack
	if why == "" {
		acks = n.sendAll(ctx, syncer, rp, repoID, req.Epoch, targets, need)
	}
	var acked, via []string
	for _, a := range acks {
		acked, via = append(acked, a.name), append(via, a.via)
	}
	ans := syncack.Answer{Replicated: acked}
	if len(acked) < need {
		n.Pushes.Unreplicated()
		ans.Warning = fmt.Sprintf("not yet replicated to another node (sync_timeout %s); it will be copied when a replica answers", n.Conf.SyncTimeout)
		if len(acked) > 0 {
			ans.Warning = fmt.Sprintf("replicated to %d of the %d nodes sync_replicas asks for (sync_timeout %s); the others will be copied when they answer",
				len(acked), need, n.Conf.SyncTimeout)
		}
	}
	ev := n.Log.Info()
	if len(acked) < need {
		ev = n.Log.Warn().Str("why", why)
	}
	ev.Str("repo", rp.String()).Int64("generation", req.Generation).Int64("epoch", req.Epoch).Strs("replicated", acked).Strs("via", via).
		Int("sync_replicas", need).Int64("duration_ms", time.Since(start).Milliseconds()).Msg("sync push")
	return ans
}

// syncTargets are the repository id and the live replica nodes of
// ORG/REPO, while this node is its primary under epoch; otherwise why
// not.
func (n *Node) syncTargets(ctx context.Context, rp names.RepoPath, epoch int64) (int64, []store.SyncTarget, string) {
	p, err := n.Store.Placement(ctx, n.Self.Name, rp.Org, rp.Repo)
	switch {
	case err != nil:
		return 0, nil, err.Error()
	case !p.PrimaryIs(n.Self.Name) || p.Epoch != epoch:
		return 0, nil, "this node is no longer the repository's primary"
	}
	all, err := n.Store.SyncTargets(ctx, p.RepoID)
	if err != nil {
		return 0, nil, err.Error()
	}
	var live []store.SyncTarget
	for _, t := range all {
		if t.Live && t.Node.ID != n.Self.ID {
			live = append(live, t)
		}
	}
	if len(live) == 0 {
		return 0, nil, "no live replica node"
	}
	return p.RepoID, live, ""
}

// hedge is how long a write to one replica may take before the next
// candidate is tried as well.
const hedge = 500 * time.Millisecond

// ack is a replica node that holds the push, and how it got it
// (transfer.ViaPack or ViaSendPack).
type ack struct{ name, via string }

// sendAll writes into need targets at once (the most current first),
// and into the next one whenever one fails or takes longer than hedge;
// it returns those that hold the push once need of them do, or at ctx's
// deadline. The writes under way then go on to that deadline;
// the workers bring the other replicas up to date as for any push.
func (n *Node) sendAll(ctx context.Context, syncer *transfer.Syncer, rp names.RepoPath, repoID, epoch int64, targets []store.SyncTarget, need int) []ack {
	deadline, _ := ctx.Deadline()
	bg, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	done := make(chan ack, len(targets))
	started := 0
	next := func() {
		t := targets[started]
		started++
		go func() { done <- n.sendOne(bg, syncer, rp, repoID, epoch, t.Node) }()
	}
	for started < min(need, len(targets)) {
		next()
	}
	timer := time.NewTicker(hedge)
	defer timer.Stop()
	var acked []ack
	received := 0
wait:
	for len(acked) < need && received < len(targets) {
		select {
		case a := <-done:
			received++
			if a.name != "" {
				acked = append(acked, a)
			} else if started < len(targets) {
				next()
			}
		case <-timer.C:
			if started < len(targets) {
				next()
			}
		case <-ctx.Done():
			break wait
		}
	}
	outstanding := started - received
	go func() {
		for range outstanding {
			<-done
		}
		cancel()
	}()
	return acked
}

// sendOne writes the push into node's replica, again after a failure
// until ctx ends; it returns the node once it holds the push, a zero ack
// if it never did.
func (n *Node) sendOne(ctx context.Context, syncer *transfer.Syncer, rp names.RepoPath, repoID, epoch int64, node store.Server) ack {
	for {
		sent, err := syncer.SendPack(ctx, rp, transfer.TargetOf(node), epoch, func(ctx context.Context) (int64, error) {
			// The id read with the placement: a repository's id never
			// changes, and the generation is read afresh each time.
			return n.Store.RepoGeneration(ctx, repoID)
		})
		if sent.SessionFailed != nil {
			n.Log.Debug().Err(sent.SessionFailed).Str("repo", rp.String()).Str("target", node.Name).Msg("sync push: the replication session failed; one ssh session instead")
		}
		if sent.Fallback != nil {
			n.Log.Debug().Err(sent.Fallback).Str("repo", rp.String()).Str("target", node.Name).Msg("sync push falls back to send-pack")
		}
		if err == nil {
			return ack{node.Name, sent.Via}
		}
		n.Log.Debug().Err(err).Str("repo", rp.String()).Str("target", node.Name).Msg("sync push attempt")
		select {
		case <-ctx.Done():
			return ack{}
		case <-time.After(250 * time.Millisecond):
		}
	}
}
