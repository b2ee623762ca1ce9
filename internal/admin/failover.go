package admin

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// Failover by hand: repo move, node drain, node remove. The commands
// record what they want in the database; the repository's primary (the
// process running its workers: cpm-shell serve or replicate) performs
// each handover, and the commands wait for it.

// MoveWait is how long repo move and node drain wait for the primaries
// to hand over before they give up (the move stays asked for).
const MoveWait = 60 * time.Second

// ErrMoveTimeout: the primary did not hand over in time.
var ErrMoveTimeout = fmt.Errorf("the primary has not handed over yet (its cpm-shell serve or cpm-shell replicate performs it: is it running? "+
	"pushes that keep running past %v hold it back too, and it tries again after a growing wait: see \"move blocked\" in its log); the move stays requested",
	store.HandoverGateWait)

// MoveRepo asks ORG/REPO's primary to hand it over to node to and waits
// until it did. already reports that to was its primary.
func (s *Service) MoveRepo(ctx context.Context, path, to string, wait time.Duration) (already bool, err error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return false, err
	}
	err = s.Store.RequestMove(ctx, s.Actor, rp.Org, rp.Repo, to)
	if errors.Is(err, store.ErrAlreadyThere) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, s.waitMoved(ctx, rp, to, wait)
}

// waitMoved polls until rp's primary is to and no move is pending.
func (s *Service) waitMoved(ctx context.Context, rp names.RepoPath, to string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		w, err := s.Store.RepoWhere(ctx, rp.Org, rp.Repo)
		if err != nil {
			return err
		}
		if strings.EqualFold(w.Primary, to) && w.MoveTo == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("move %s to %s: %w", rp, to, ErrMoveTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// DrainResult is what node drain did.
type DrainResult struct {
	Moved []string `json:"moved"` // ORG/REPO -> NODE
	// Stuck are the repositories with no live replica to move to.
	Stuck []string `json:"stuck"`
}

// DrainNode marks node name draining and waits until it has handed over
// every repository it is primary of that has a live replica elsewhere.
func (s *Service) DrainNode(ctx context.Context, name string, wait time.Duration) (DrainResult, error) {
	plan, err := s.Store.SetDraining(ctx, s.Actor, name)
	if err != nil {
		return DrainResult{}, err
	}
	res := DrainResult{Moved: []string{}, Stuck: append([]string{}, plan.Stuck...)}
	for _, m := range plan.Moves {
		rp, err := names.ParseRepoPath(m.Repo)
		if err != nil {
			return res, err
		}
		if err := s.waitMoved(ctx, rp, m.To.Name, wait); err != nil {
			return res, err
		}
		res.Moved = append(res.Moved, m.Repo+" -> "+m.To.Name)
	}
	if len(res.Stuck) > 0 {
		return res, fmt.Errorf("drain %s: no live replica to move %s to; it stays draining (start another node, then drain again)",
			name, strings.Join(res.Stuck, ", "))
	}
	return res, nil
}

// RemoveNode deletes node name from the cluster when it holds nothing
// alone, then gives the repositories it held replicas elsewhere.
func (s *Service) RemoveNode(ctx context.Context, name string, replicas int, lease time.Duration) (int, error) {
	if err := s.Store.RemoveNode(ctx, s.Actor, name); err != nil {
		return 0, err
	}
	return s.Store.PlaceRepos(ctx, s.Actor, store.Placing{Node: name, Replicas: replicas, Lease: lease})
}

// failoverFix is doctor's advice on what checkFailover finds.
const failoverFix = "start the node that holds the newest generation; inspect kept refs on the primary " +
	"(git -C DATA/repos/ORG/REPO.git log REF), push what should stay under a new name, then delete the kept ref " +
	"(git update-ref -d REF); finish a drain with cpm-admin node drain NAME"

// checkFailover reports, for doctor on a cluster node, the repositories
// waiting for an election (no live replica holds their newest
// generation), refs kept from a returning old primary, and drains not
// finished.
func (s *Service) checkFailover(ctx context.Context, syncReplicas int) []string {
	var problems []string
	waiting, err := s.Store.WaitingForPrimary(ctx, syncReplicas)
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, w := range waiting {
		problems = append(problems, fmt.Sprintf("%s has no primary (%s is down): %s", w.Repo, w.Primary, w.Why))
	}
	diverged, err := s.Store.Diverged(ctx, 0)
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, d := range diverged {
		if s.refGone(ctx, d) {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s: %s kept as %s (%s, written on %s before epoch %d)", d.Repo, d.Ref, d.SavedAs(), d.Object, d.Node, d.Epoch))
	}
	nodes, err := s.Store.Nodes(ctx)
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, n := range nodes {
		if n.Draining && n.Primaries > 0 {
			problems = append(problems, fmt.Sprintf("node %s is draining but still primary of %d repositories", n.Name, n.Primaries))
		}
	}
	return problems
}

// refGone reports whether a kept ref was deleted from this node's copy
// (the operator dealt with it): doctor stops reporting it. A copy not
// on this node's disk says nothing.
func (s *Service) refGone(ctx context.Context, d store.DivergedRef) bool {
	rp, err := names.ParseRepoPath(d.Repo)
	if err != nil {
		return false
	}
	dir, err := s.Disk.Open(rp.Org, rp.Repo)
	if err != nil {
		return false
	}
	c := exec.CommandContext(ctx, "git", "rev-parse", "-q", "--verify", d.SavedAs())
	c.Dir, c.Env = dir, repos.Env(dir)
	return c.Run() != nil
}
