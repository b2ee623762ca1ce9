package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Placing is how a node places repositories: its own name (the primary
// of what it creates) and how many replicas each repository gets on
// other nodes. The zero Placing is "not in a cluster": nothing is placed.
type Placing struct {
	Node string
	// Replicas is the `replicas` setting: copies on other nodes, capped
	// at the number of other nodes.
	Replicas int
	// Lease is the `lease` setting. Placement does not need it: a node
	// is up while its lease holds by the database's clock, which the node
	// renews with this setting.
	Lease time.Duration
}

// Clustered reports whether the placing node is a cluster node.
func (p Placing) Clustered() bool { return p.Node != "" }

// PlaceAs makes every repository this store creates placed by p unless
// NewRepo.Placing says otherwise: the creating node becomes its primary
// (repo create, a push that creates, a restore). A cluster node's
// processes call it once, right after opening the store and before
// using it.
func (s *Store) PlaceAs(p Placing) { s.placing = p }

// candidate is a node as the replica choice sees it.
type candidate struct {
	id       int64
	name     string
	up       bool
	draining bool
	replicas int
}

// chooseReplicas picks the nodes that get new replicas of a repository:
// up to want in all, counting those it has, never its primary nor a
// draining node; up nodes before down ones (a down node still gets its
// copy when it comes back, better than none), fewest replicas first,
// ties by name. It counts each choice into nodes, so that placing many
// repositories in a row spreads them.
func chooseReplicas(nodes []candidate, primary int64, have map[int64]bool, want int) []int64 {
	if want > len(nodes)-1 {
		want = len(nodes) - 1
	}
	want -= len(have)
	var pool []int
	for i, n := range nodes {
		if n.id != primary && !have[n.id] && !n.draining {
			pool = append(pool, i)
		}
	}
	sort.SliceStable(pool, func(a, b int) bool {
		x, y := nodes[pool[a]], nodes[pool[b]]
		if x.up != y.up {
			return x.up
		}
		if x.replicas != y.replicas {
			return x.replicas < y.replicas
		}
		return x.name < y.name
	})
	var out []int64
	for _, i := range pool {
		if len(out) >= want {
			break
		}
		nodes[i].replicas++
		out = append(out, nodes[i].id)
	}
	return out
}

// loadCandidates reads every node with its replica count, under the
// placement lock. A node is up while its lease holds (leaseLive).
func loadCandidates(ctx context.Context, tx *Tx) ([]candidate, error) {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, placementLock); err != nil {
		return nil, fmt.Errorf("place repositories: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT s.id, s.name, `+leaseLive(tx.d, "s")+`, s.draining,
		       (SELECT count(*) FROM replication_jobs j WHERE j.server_id = s.id)
		FROM servers s WHERE s.role = 'node' ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("place repositories: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.id, &c.name, &c.up, &c.draining, &c.replicas); err != nil {
			return nil, fmt.Errorf("place repositories: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// addReplicas makes each chosen node a replica of the repository: a
// queue row the primary's workers bring to the repository's generation.
// Its repo_generation is -1 until the first verified sync: the node
// holds nothing yet, not even a new repository's generation 0, so reads
// there go to the primary.
func addReplicas(ctx context.Context, tx *Tx, repoID int64, nodes []int64) error {
	at := now()
	for _, id := range nodes {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation)
			VALUES (?, ?, 1, 'pending', ?3, ?3, -1) ON CONFLICT DO NOTHING`, repoID, id, at); err != nil {
			return fmt.Errorf("add replica: %w", err)
		}
	}
	return nil
}

// placeNew makes the placing node the primary of a repository it just
// created and chooses its replicas.
func placeNew(ctx context.Context, tx *Tx, p Placing, repoID int64) (int64, error) {
	if tx.d != postgres {
		return 0, ErrNeedsPostgres
	}
	nodes, err := loadCandidates(ctx, tx)
	if err != nil {
		return 0, err
	}
	var self int64
	draining := false
	for _, n := range nodes {
		if strings.EqualFold(n.name, p.Node) { // names are case-insensitive
			self, draining = n.id, n.draining
		}
	}
	if self == 0 {
		return 0, fmt.Errorf("place repository: node %q is not in the cluster (cpm-admin init --node-name): %w", p.Node, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE repos SET primary_id = ? WHERE id = ?`, self, repoID); err != nil {
		return 0, fmt.Errorf("place repository: %w", err)
	}
	chosen := chooseReplicas(nodes, self, nil, p.Replicas)
	if err := addReplicas(ctx, tx, repoID, chosen); err != nil {
		return 0, err
	}
	return self, moveOffDraining(ctx, tx, repoID, draining, chosen)
}

// PlaceRepos gives every repository without a primary the cluster's
// first node (they existed before the cluster, on that node's disk) and
// every repository short of replicas new ones, as init does when a node
// joins. It returns how many replicas it added.
func (s *Store) PlaceRepos(ctx context.Context, a Actor, p Placing) (int, error) {
	if s.db.d != postgres {
		return 0, ErrNeedsPostgres
	}
	added := 0
	err := s.change(ctx, a, "node.place", p.Node, map[string]any{"replicas": p.Replicas}, keepsMeta, func(tx *Tx) error {
		nodes, err := loadCandidates(ctx, tx)
		if err != nil || len(nodes) == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE repos SET primary_id = (SELECT min(id) FROM servers WHERE role = 'node')
			WHERE primary_id IS NULL`); err != nil {
			return fmt.Errorf("place repositories: %w", err)
		}
		held, err := replicaSets(ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range held {
			add := chooseReplicas(nodes, r.primary, r.have, p.Replicas)
			if err := addReplicas(ctx, tx, r.id, add); err != nil {
				return err
			}
			added += len(add)
		}
		return nil
	})
	return added, err
}

// heldRepo is a repository with its primary and replica nodes.
type heldRepo struct {
	id, primary int64
	have        map[int64]bool
}

// replicaSets reads every placed repository with the nodes that hold
// its replicas, in id order.
func replicaSets(ctx context.Context, tx *Tx) ([]heldRepo, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT r.id, r.primary_id, coalesce(j.server_id, 0) FROM repos r
		LEFT JOIN replication_jobs j ON j.repo_id = r.id AND j.server_id IN (SELECT id FROM servers WHERE role = 'node')
		WHERE r.primary_id IS NOT NULL ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("place repositories: %w", err)
	}
	defer rows.Close()
	var out []heldRepo
	for rows.Next() {
		var id, primary, node int64
		if err := rows.Scan(&id, &primary, &node); err != nil {
			return nil, fmt.Errorf("place repositories: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].id != id {
			out = append(out, heldRepo{id: id, primary: primary, have: map[int64]bool{}})
		}
		if node != 0 {
			out[len(out)-1].have[node] = true
		}
	}
	return out, rows.Err()
}
