package admin

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"cpm/internal/authkeys"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
)

// NodeStatus is one line of `node list`.
type NodeStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is up, down (its lease ran out, by the database's clock) or
	// draining.
	State string `json:"state"`
	// Heartbeat is the node's last lease renewal (null: never).
	Heartbeat *time.Time `json:"heartbeat"`
	Primaries int        `json:"primaries"`
	Replicas  int        `json:"replicas"`
}

// Nodes lists the cluster's nodes with their state; none outside a
// cluster.
func (s *Service) Nodes(ctx context.Context) ([]NodeStatus, error) {
	nodes, err := s.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		ns := NodeStatus{Name: n.Name, Address: net.JoinHostPort(n.Host, strconv.Itoa(n.Port)),
			State: n.State(), Primaries: n.Primaries, Replicas: n.Replicas}
		if !n.HeartbeatAt.IsZero() {
			hb := n.HeartbeatAt.UTC()
			ns.Heartbeat = &hb
		}
		out = append(out, ns)
	}
	return out, nil
}

// RepoWhere is `repo where`: a repository's primary, generation and epoch
// and each replica's.
type RepoWhere struct {
	Repo       string         `json:"repo"`
	Primary    string         `json:"primary"` // "" outside a cluster
	Generation int64          `json:"generation"`
	Epoch      int64          `json:"epoch"`
	Replicas   []ReplicaWhere `json:"replicas"`
	// MoveTo is the node a requested move (repo move, node drain) hands
	// the repository to; omitted when none is pending.
	MoveTo string `json:"move_to,omitempty"`
	// Diverged are refs kept from a returning old primary, under
	// refs/cpm/diverged/EPOCH/ on the primary.
	Diverged []store.DivergedRef `json:"diverged,omitempty"`
}

// ReplicaWhere is one node's copy.
type ReplicaWhere struct {
	Node       string  `json:"node"`
	Generation int64   `json:"generation"`
	LagSeconds float64 `json:"lag_seconds"`
	// State is current (it holds the repository's generation), else
	// the queue's state of its sync: pending, running, failed, blocked.
	State string `json:"state"`
}

// Where says where ORG/REPO lives.
func (s *Service) Where(ctx context.Context, path string) (RepoWhere, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return RepoWhere{}, err
	}
	w, err := s.Store.RepoWhere(ctx, rp.Org, rp.Repo)
	if err != nil {
		return RepoWhere{}, err
	}
	out := RepoWhere{Repo: w.Repo, Primary: w.Primary, Generation: w.Generation, Epoch: w.Epoch, Replicas: []ReplicaWhere{},
		MoveTo: w.MoveTo, Diverged: w.Diverged}
	now := s.Now()
	for _, r := range w.Replicas {
		rw := ReplicaWhere{Node: r.Node, Generation: r.Generation, State: replicaState(r, w.Generation)}
		if r.Generation < w.Generation {
			rw.LagSeconds = r.Job.Lag(now).Seconds()
		}
		out.Replicas = append(out.Replicas, rw)
	}
	return out, nil
}

// replicaState is "current" for a replica at the repository's
// generation; otherwise its sync's state, "behind" when the queue thinks
// it done (a sync that recorded no generation).
func replicaState(r store.Replica, generation int64) string {
	switch {
	case r.Generation >= generation:
		return "current"
	case r.Job.Done():
		return "behind"
	}
	return string(r.Job.State)
}

// PlaceAs makes the repositories this session creates placed as the
// cluster node dir is (the creating node becomes the primary), and
// doctor look at what this node holds; nothing outside a cluster.
func (s *Service) PlaceAs(ctx context.Context, dir datadir.Dir, replicas int, lease time.Duration) error {
	name, err := dir.NodeName()
	if err != nil || name == "" {
		return err
	}
	if s.self, err = s.Store.NodeByName(ctx, name); err != nil {
		return fmt.Errorf("this data directory is node %s (%s): %w", name, dir.NodeFile(), err)
	}
	s.Store.PlaceAs(store.Placing{Node: name, Replicas: replicas, Lease: lease})
	return nil
}

// holds reports, for doctor, which repositories this node should have on
// disk: every one outside a cluster (nil), in a cluster its primaries
// and the replicas synced here.
func (s *Service) holds(ctx context.Context) (map[int64]bool, error) {
	if s.self.ID == 0 {
		return nil, nil
	}
	return s.Store.HeldBy(ctx, s.self.ID)
}

// checkNodes reports, for doctor on a cluster node, the nodes that are
// down.
func (s *Service) checkNodes(ctx context.Context) []string {
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, n := range nodes {
		if n.State != store.NodeDown {
			continue
		}
		last := "never"
		if n.Heartbeat != nil {
			last = s.Now().Sub(*n.Heartbeat).Round(time.Second).String() + " ago"
		}
		problems = append(problems, fmt.Sprintf("node %s (%s) is down: last heartbeat %s", n.Name, n.Address, last))
	}
	return problems
}

// NodeKeys are the cluster's nodes, whose replication keys OpenSSH's sshd
// lets in to run cpm's node commands (cpm-admin authorized-keys); none
// outside a cluster.
func (s *Service) NodeKeys(ctx context.Context) ([]store.Server, error) {
	nodes, err := s.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Server
	for _, n := range nodes {
		if n.PeerKey != "" {
			out = append(out, n.Server)
		}
	}
	return out, nil
}

// NodeLines are the authorized_keys lines that let the cluster's nodes
// in to run cpm-shell (shellBin) on dataDir. A node whose row cannot make
// a line is left out and named to warn: one bad row must keep no other
// node out.
func (s *Service) NodeLines(ctx context.Context, shellBin, dataDir string, warn func(error)) ([]string, error) {
	nodes, err := s.NodeKeys(ctx)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, n := range nodes {
		line, err := authkeys.PeerLine(shellBin, dataDir, n.PeerFingerprint, n.PeerKey)
		if err != nil {
			warn(fmt.Errorf("node %s left out: %w", n.Name, err))
			continue
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// NodeKey is the cluster node whose replication key has fingerprint fp
// (store.ErrNotFound: none; a neighbour's key is none either).
func (s *Service) NodeKey(ctx context.Context, fp string) (store.Server, error) {
	srv, err := s.Store.PeerByFingerprint(ctx, fp)
	if err != nil {
		return store.Server{}, err
	}
	if srv.Role != store.Node {
		return store.Server{}, fmt.Errorf("%s is no node's key: %w", fp, store.ErrNotFound)
	}
	return srv, nil
}
