package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// NodeSpec is what `cpm-admin init --node-name` tells the cluster about
// this data directory.
type NodeSpec struct {
	Name string
	// User, Host and Port are where the other nodes reach this node's
	// ssh (--advertise), and as whom.
	User string
	Host string
	Port int
	// PeerKey ("TYPE BASE64") and PeerFingerprint are this node's own
	// replication key: with it the node copies to the others and relays.
	PeerKey, PeerFingerprint string
	// HostKeyPEM (OpenSSH private key) and HostKey (its public line) are
	// a fresh client-facing host key, kept only if the cluster has none
	// yet: the first node's becomes every node's.
	HostKeyPEM, HostKey string
}

// Keys of the shared `node` table that hold the cluster's client-facing
// host key. The database is the cluster's root of trust: whoever can
// write it can add a site admin's key anyway.
const (
	clusterHostKey    = "cluster_host_key"
	clusterHostKeyPub = "cluster_host_key_pub"
)

// ErrNeedsPostgres means a cluster was asked of a SQLite store.
var ErrNeedsPostgres = errors.New("a cluster needs PostgreSQL (init --database postgres://…)")

// JoinCluster adds this node's row (role node) or updates it when init
// runs again, and returns it with the cluster's host key (PEM), which the
// first node to join creates. A name held by a backup or neighbour, or by
// a node with another replication key (another data directory), and an
// address another node advertises, are refused.
func (s *Store) JoinCluster(ctx context.Context, a Actor, n NodeSpec) (Server, string, error) {
	if s.db.d != postgres {
		return Server{}, "", ErrNeedsPostgres
	}
	var srv Server
	var pem string
	details := map[string]any{"host": n.Host, "port": n.Port, "ssh_user": nodeUser(n.User), "peer_key": n.PeerFingerprint}
	err := s.change(ctx, a, "node.join", n.Name, details, keepsMeta, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, placementLock); err != nil {
			return fmt.Errorf("join cluster: %w", err)
		}
		var pub string
		var err error
		if pem, pub, err = clusterKey(ctx, tx, n.HostKeyPEM, n.HostKey); err != nil {
			return err
		}
		if err := checkNodeClash(ctx, tx, n); err != nil {
			return err
		}
		at := now()
		_, err = tx.ExecContext(ctx, `
			INSERT INTO servers (name, host, port, ssh_user, path, role, host_key, approved, enabled, created_at,
			                     peer_key, peer_fingerprint, heartbeat_at)
			VALUES (?1, ?2, ?3, ?8, '', 'node', ?4, 1, 1, ?5, ?6, ?7, ?5)
			ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, ssh_user = excluded.ssh_user,
				host_key = excluded.host_key, peer_key = excluded.peer_key, heartbeat_at = excluded.heartbeat_at`,
			n.Name, n.Host, n.Port, pub, at, n.PeerKey, n.PeerFingerprint, nodeUser(n.User))
		if err != nil {
			return fmt.Errorf("join cluster as %s: %w", n.Name, err)
		}
		srv, err = scanServer(tx.QueryRowContext(ctx, serverSelect+` WHERE name = ?`, n.Name))
		return err
	})
	return srv, pem, err
}

// DefaultNodeUser is the account other nodes log in to a node as unless
// its --advertise named one.
const DefaultNodeUser = "cpm"

func nodeUser(user string) string {
	if user == "" {
		return DefaultNodeUser
	}
	return user
}

// placementLock serialises the changes that count replicas per node
// (joining, placing): two nodes initialising at once would otherwise
// both see a repository short of a replica and both add one.
const placementLock = 0x63706d02

// clusterKey stores the candidate host key unless the cluster has one,
// and returns the one in force. It reads first: a joining node's own key
// is sent to the database only when it becomes the cluster's, never as a
// parameter that a statement log would keep (the advisory lock held by
// the caller makes read-then-insert safe).
func clusterKey(ctx context.Context, tx *Tx, pem, pub string) (string, string, error) {
	var gotPEM, gotPub string
	err := tx.QueryRowContext(ctx, `
		SELECT k.value, p.value FROM node k JOIN node p ON p.key = ? WHERE k.key = ?`, clusterHostKeyPub, clusterHostKey).
		Scan(&gotPEM, &gotPub)
	if errors.Is(err, sql.ErrNoRows) {
		for _, kv := range [][2]string{{clusterHostKey, pem}, {clusterHostKeyPub, pub}} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO node (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, kv[0], kv[1]); err != nil {
				return "", "", fmt.Errorf("cluster host key: %w", err)
			}
		}
		gotPEM, gotPub, err = pem, pub, nil
	}
	if err != nil {
		return "", "", fmt.Errorf("cluster host key: %w", err)
	}
	if gotPEM == "" || gotPub == "" {
		return "", "", errors.New("cluster host key: the database holds an empty key")
	}
	return gotPEM, gotPub, nil
}

// checkNodeClash refuses a node spec whose name or address belongs to
// another server.
func checkNodeClash(ctx context.Context, tx *Tx, n NodeSpec) error {
	var role Role
	var fp string
	err := tx.QueryRowContext(ctx, `SELECT role, peer_fingerprint FROM servers WHERE name = ?`, n.Name).Scan(&role, &fp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("join cluster as %s: %w", n.Name, err)
	case role != Node:
		return fmt.Errorf("join cluster: the name %q belongs to a %s server: %w", n.Name, role, ErrExists)
	case fp != n.PeerFingerprint:
		return fmt.Errorf("join cluster: node %q is another data directory (replication key %s): %w", n.Name, fp, ErrExists)
	}
	var other string
	// A replication key names one server: a cloned data directory
	// joining under a new name would make the key's owner ambiguous.
	err = tx.QueryRowContext(ctx, `SELECT name FROM servers WHERE peer_fingerprint = ? AND name <> ?`, n.PeerFingerprint, n.Name).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("join cluster as %s: %w", n.Name, err)
	default:
		return fmt.Errorf("join cluster: the replication key %s is %q's (a copy of its data directory?): %w", n.PeerFingerprint, other, ErrExists)
	}
	var users int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM ssh_keys WHERE fingerprint = ?`, n.PeerFingerprint).Scan(&users); err != nil {
		return fmt.Errorf("join cluster as %s: %w", n.Name, err)
	}
	if users > 0 {
		return fmt.Errorf("join cluster: the replication key %s is %s: %w", n.PeerFingerprint, keyHolder(ctx, tx, n.PeerFingerprint), ErrExists)
	}
	err = tx.QueryRowContext(ctx, `SELECT name FROM servers WHERE role = 'node' AND host = ? AND port = ? AND name <> ?`,
		n.Host, n.Port, n.Name).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("join cluster as %s: %w", n.Name, err)
	}
	return fmt.Errorf("join cluster: node %q already advertises %s:%d: %w", other, n.Host, n.Port, ErrExists)
}

// ClusterHostKey returns the cluster's client-facing host key (PEM), ""
// when no node has joined yet.
func (s *Store) ClusterHostKey(ctx context.Context) (string, error) {
	var pem string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM node WHERE key = ?`, clusterHostKey).Scan(&pem)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster host key: %w", err)
	}
	return pem, nil
}

// ClusterNode is one node of the cluster with what it holds.
type ClusterNode struct {
	Server
	// Primaries and Replicas count the repositories it holds as primary
	// and as replica.
	Primaries, Replicas int
	// Live: its lease holds, by the database's clock (leaseLive, the one rule
	// for up and down).
	Live bool
}

// Node states, as `node list` shows them.
const (
	NodeUp       = "up"
	NodeDown     = "down"
	NodeDraining = "draining"
)

// State is the node's state: draining if it is, down if its lease ran
// out (or it never had one), up otherwise.
func (n ClusterNode) State() string {
	switch {
	case n.Draining:
		return NodeDraining
	case !n.Live:
		return NodeDown
	}
	return NodeUp
}

// Nodes lists the cluster's nodes by name (none outside a cluster).
func (s *Store) Nodes(ctx context.Context) ([]ClusterNode, error) {
	rows, err := s.db.QueryContext(ctx, serverSelect+` WHERE role = 'node' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []ClusterNode
	byID := map[int64]int{}
	for rows.Next() {
		srv, err := scanServer(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		byID[srv.ID] = len(out)
		out = append(out, ClusterNode{Server: srv})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	rows.Close()
	if err := s.markLive(ctx, out, byID); err != nil {
		return nil, err
	}
	return out, s.countHoldings(ctx, out, byID)
}

// markLive sets Live on the nodes whose lease holds (leaseLive).
func (s *Store) markLive(ctx context.Context, nodes []ClusterNode, byID map[int64]int) error {
	rows, err := s.db.QueryContext(ctx, `SELECT n.id FROM servers n WHERE n.role = 'node' AND `+leaseLive(s.db.d, "n"))
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		if i, ok := byID[id]; ok {
			nodes[i].Live = true
		}
	}
	return rows.Err()
}

// countHoldings fills in how many primaries and replicas each node holds.
func (s *Store) countHoldings(ctx context.Context, nodes []ClusterNode, byID map[int64]int) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT primary_id, 1, count(*) FROM repos WHERE primary_id IS NOT NULL GROUP BY primary_id
		UNION ALL
		SELECT j.server_id, 2, count(*) FROM replication_jobs j JOIN servers s ON s.id = j.server_id
		WHERE s.role = 'node' GROUP BY j.server_id`)
	if err != nil {
		return fmt.Errorf("count nodes' repositories: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, n int
		if err := rows.Scan(&id, &kind, &n); err != nil {
			return fmt.Errorf("count nodes' repositories: %w", err)
		}
		i, ok := byID[id]
		switch {
		case !ok:
		case kind == 1:
			nodes[i].Primaries = n
		default:
			nodes[i].Replicas = n
		}
	}
	return rows.Err()
}

// NodeByName finds one node of the cluster.
func (s *Store) NodeByName(ctx context.Context, name string) (Server, error) {
	srv, err := s.ServerByName(ctx, name)
	if err != nil {
		return Server{}, err
	}
	if srv.Role != Node {
		return Server{}, notFound("node", name)
	}
	return srv, nil
}

// IsNodeName reports whether name is a node of the cluster (any letter
// case): `server add/set/remove/approve` leave nodes alone.
func (s *Store) IsNodeName(ctx context.Context, name string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM servers WHERE name = ? AND role = 'node'`, name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("find node %s: %w", name, err)
	}
	return n > 0, nil
}

// SetNodeKey records a node's new replication key (it rotated its key):
// the other nodes recognise it by this one from now on.
func (s *Store) SetNodeKey(ctx context.Context, a Actor, name, key, fingerprint string) error {
	return s.change(ctx, a, "node.key", name, map[string]any{"peer_key": fingerprint}, keepsMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE servers SET peer_key = ?, peer_fingerprint = ? WHERE name = ? AND role = 'node'`, key, fingerprint, name)
		if err != nil {
			return fmt.Errorf("set key of node %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("node", name)
		}
		return nil
	})
}

// HeldBy lists the repositories node id has on disk: those it is primary
// of and those whose replica a sync has brought there (a replica still
// waiting for its first sync is not there yet).
func (s *Store) HeldBy(ctx context.Context, id int64) (map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id FROM repos WHERE primary_id = ?1
		UNION SELECT repo_id FROM replication_jobs WHERE server_id = ?1 AND repo_generation >= 0`, id)
	if err != nil {
		return nil, fmt.Errorf("repositories of node %d: %w", id, err)
	}
	defer rows.Close()
	held := map[int64]bool{}
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("repositories of node %d: %w", id, err)
		}
		held[r] = true
	}
	return held, rows.Err()
}
