package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Server is a replication target: a backup server or a neighbour peer.
type Server struct {
	ID            int64     `json:"-"`
	Name          string    `json:"name"`
	Host          string    `json:"host"`
	Port          int       `json:"port"`
	User          string    `json:"user"`
	Path          string    `json:"path"`
	Role          Role      `json:"role"`
	HostKey       string    `json:"host_key"`
	Approved      bool      `json:"approved"`
	Enabled       bool      `json:"enabled"`
	BlockedReason string    `json:"blocked_reason,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// PeerKey is a neighbour's replication key ("TYPE BASE64"): with it,
	// once approved, the neighbour may deliver replicas to this node.
	PeerKey         string `json:"peer_key,omitempty"`
	PeerFingerprint string `json:"peer_fingerprint,omitempty"`
	// MetaGeneration is the metadata generation last delivered to it.
	MetaGeneration int64 `json:"-"`
	// MetaError is why the last metadata delivery to it failed ("" after
	// a success).
	MetaError string `json:"meta_error,omitempty"`
	// Scope and transfer settings (server add / server set).
	RepoPatterns string    `json:"repos,omitempty"` // comma-separated ORG/REPO patterns; "" is all
	RefPatterns  string    `json:"refs,omitempty"`  // comma-separated ref patterns; "" is all
	BWLimitKBps  int       `json:"bwlimit_kbps"`    // 0: unlimited
	Compress     int       `json:"compress_level"`  // 0: none
	EverySeconds int       `json:"every_seconds"`   // reconciliation interval
	ReconciledAt time.Time `json:"reconciled_at,omitzero"`
	// AuthorizedKeys is where a backup keeps cpm's key (key rotation).
	AuthorizedKeys string `json:"authorized_keys"`
	// KeyState is the server's place in a key rotation: "", "next", "done".
	KeyState string `json:"key_state,omitempty"`
	// ForwardPushes lets a neighbour forward pushes made to its replicas.
	ForwardPushes bool `json:"forward_pushes"`
	// A cluster node's last heartbeat, the end of its lease and whether it
	// is draining (zero for backups and neighbours).
	HeartbeatAt time.Time `json:"-"`
	LeaseUntil  time.Time `json:"-"`
	Draining    bool      `json:"-"`
}

const serverSelect = `
	SELECT id, name, host, port, ssh_user, path, role, host_key, approved, enabled, blocked_reason, created_at,
	       peer_key, peer_fingerprint, meta_generation,
	       repo_patterns, ref_patterns, bwlimit_kbps, compress_level, every_seconds, reconciled_at,
	       authorized_keys, key_state, forward_pushes, meta_error, heartbeat_at, lease_until, draining
	FROM servers`

func scanServer(sc scanner) (Server, error) {
	var s Server
	var at, reconciled, heartbeat, lease string
	err := sc.Scan(&s.ID, &s.Name, &s.Host, &s.Port, &s.User, &s.Path, &s.Role, &s.HostKey, &s.Approved, &s.Enabled, &s.BlockedReason, &at, &s.PeerKey, &s.PeerFingerprint, &s.MetaGeneration,
		&s.RepoPatterns, &s.RefPatterns, &s.BWLimitKBps, &s.Compress, &s.EverySeconds, &reconciled,
		&s.AuthorizedKeys, &s.KeyState, &s.ForwardPushes, &s.MetaError, &heartbeat, &lease, &s.Draining)
	s.CreatedAt = parseTime(at)
	s.ReconciledAt = parseTime(reconciled)
	s.HeartbeatAt, s.LeaseUntil = parseTime(heartbeat), parseTime(lease)
	return s, err
}

// AddServer registers a replication target with its pinned host key.
func (s *Store) AddServer(ctx context.Context, a Actor, srv Server) (Server, error) {
	details := map[string]any{"host": srv.Host, "port": srv.Port, "role": srv.Role, "path": srv.Path, "approved": srv.Approved}
	if srv.PeerFingerprint != "" {
		details["peer_key"] = srv.PeerFingerprint
	}
	err := s.change(ctx, a, "server.add", srv.Name, details, altersMeta, func(tx *Tx) error {
		at := now()
		id, err := tx.InsertID(ctx, `
			INSERT INTO servers (name, host, port, ssh_user, path, role, host_key, approved, enabled, created_at, peer_key, peer_fingerprint,
			                     repo_patterns, ref_patterns, bwlimit_kbps, compress_level, every_seconds, authorized_keys)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			srv.Name, srv.Host, srv.Port, srv.User, srv.Path, srv.Role, srv.HostKey, srv.Approved, at, srv.PeerKey, srv.PeerFingerprint,
			srv.RepoPatterns, srv.RefPatterns, srv.BWLimitKBps, srv.Compress, everyOrDefault(srv.EverySeconds), authorizedOrDefault(srv.AuthorizedKeys))
		if isUnique(err) {
			return exists("server", srv.Name)
		}
		if err != nil {
			return fmt.Errorf("add server %s: %w", srv.Name, err)
		}
		srv.ID = id
		srv.Enabled = true
		srv.CreatedAt = parseTime(at)
		// Everything that exists now is owed to the new target.
		return markAllDirty(ctx, tx, srv.ID)
	})
	return srv, err
}

// Servers lists every target.
func (s *Store) Servers(ctx context.Context) ([]Server, error) {
	rows, err := s.db.QueryContext(ctx, serverSelect+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	defer rows.Close()
	var out []Server
	for rows.Next() {
		srv, err := scanServer(rows)
		if err != nil {
			return nil, fmt.Errorf("list servers: %w", err)
		}
		out = append(out, srv)
	}
	return out, rows.Err()
}

// ServerByName finds one target.
func (s *Store) ServerByName(ctx context.Context, name string) (Server, error) {
	srv, err := scanServer(s.db.QueryRowContext(ctx, serverSelect+` WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, notFound("server", name)
	}
	if err != nil {
		return Server{}, fmt.Errorf("find server %s: %w", name, err)
	}
	return srv, nil
}

// RemoveServer forgets a target and its queue; nothing on it is touched.
func (s *Store) RemoveServer(ctx context.Context, a Actor, name string) error {
	return s.change(ctx, a, "server.remove", name, nil, altersMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM servers WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("remove server %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("server", name)
		}
		return nil
	})
}

// BlockServer stops syncing to a target until an operator acts.
func (s *Store) BlockServer(ctx context.Context, id int64, reason string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE servers SET blocked_reason = ? WHERE id = ?`, reason, id)
	if err != nil {
		return fmt.Errorf("block server: %w", err)
	}
	return nil
}

// UnblockServer lifts a server's block and lets its blocked and failed
// jobs run again at once: what `server check` does when it passes.
func (s *Store) UnblockServer(ctx context.Context, a Actor, name, reason string) error {
	return s.change(ctx, a, "server.unblock", name, map[string]any{"was": reason}, keepsMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE servers SET blocked_reason = '' WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("unblock server %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("server", name)
		}
		return requeueBlocked(ctx, tx, name)
	})
}

// requeueBlocked lets the named server's blocked and failed jobs run now.
func requeueBlocked(ctx context.Context, tx *Tx, name string) error {
	if _, err := tx.ExecContext(ctx, `
		UPDATE replication_jobs SET state = 'pending', next_attempt_at = ?
		WHERE server_id = (SELECT id FROM servers WHERE name = ?) AND state IN ('failed', 'blocked')`, now(), name); err != nil {
		return fmt.Errorf("requeue %s: %w", name, err)
	}
	return nil
}

// ApproveServer lets syncs go to a server (neighbours found by discovery
// start unapproved).
// With forwardPushes, a neighbour may also forward pushes to it.
func (s *Store) ApproveServer(ctx context.Context, a Actor, name string, forwardPushes bool) error {
	return s.change(ctx, a, "server.approve", name, map[string]any{"forward_pushes": forwardPushes}, altersMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE servers SET approved = 1, forward_pushes = ? WHERE name = ?`, forwardPushes, name)
		if err != nil {
			return fmt.Errorf("approve server %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("server", name)
		}
		return nil
	})
}

// PeerByFingerprint finds the approved neighbour, or the node of this
// cluster, whose replication key has the fingerprint: the peer a
// connection speaks for. The caller tells them apart by Role: a node is
// trusted as a member of the same service, a neighbour is not.
func (s *Store) PeerByFingerprint(ctx context.Context, fingerprint string) (Server, error) {
	srv, err := scanServer(s.db.QueryRowContext(ctx, serverSelect+`
		WHERE peer_fingerprint = ? AND role IN ('neighbor', 'node') AND approved = 1`, fingerprint))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, notFound("peer", fingerprint)
	}
	if err != nil {
		return Server{}, fmt.Errorf("find peer: %w", err)
	}
	return srv, nil
}

// SetMetaGeneration records the metadata generation delivered to a
// server, which ends any delivery failure.
func (s *Store) SetMetaGeneration(ctx context.Context, id, generation int64) error {
	// CASE, not SQLite's two-argument max(), which PostgreSQL lacks.
	_, err := s.db.ExecContext(ctx, `UPDATE servers SET meta_generation = CASE WHEN meta_generation > ?1 THEN meta_generation ELSE ?1 END,
		meta_error = '' WHERE id = ?2`, generation, id)
	if err != nil {
		return fmt.Errorf("record metadata delivery: %w", err)
	}
	return nil
}

// SetMetaError records why a metadata delivery to a server failed.
func (s *Store) SetMetaError(ctx context.Context, id int64, reason string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE servers SET meta_error = ? WHERE id = ?`, reason, id); err != nil {
		return fmt.Errorf("record failed metadata delivery: %w", err)
	}
	return nil
}

// HoldServers blocks every server with reason, in one audited change; a
// retry (sync retry) releases them.
func (s *Store) HoldServers(ctx context.Context, a Actor, reason string) error {
	return s.change(ctx, a, "server.hold", "*", map[string]any{"reason": reason}, keepsMeta, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET blocked_reason = ?`, reason); err != nil {
			return fmt.Errorf("hold servers: %w", err)
		}
		return nil
	})
}

// DefaultEvery is the reconciliation interval of a server that sets none.
const DefaultEvery = 86400

func everyOrDefault(s int) int {
	if s <= 0 {
		return DefaultEvery
	}
	return s
}

// ServerSettings are what `server set` may change; nil leaves a value.
type ServerSettings struct {
	// HostKey re-pins the server; it also lifts a block and lets its
	// blocked and failed jobs run again at once.
	HostKey                      *string
	AuthorizedKeys               *string
	RepoPatterns, RefPatterns    *string
	BWLimitKBps, Compress, Every *int
}

// SetServer changes a server's scope and transfer settings; they apply
// from its next sync.
func (s *Store) SetServer(ctx context.Context, a Actor, name string, set ServerSettings) error {
	details := map[string]any{}
	var cols []string
	var args []any
	add := func(col, key string, v any) {
		cols = append(cols, col+" = ?")
		args = append(args, v)
		details[key] = v
	}
	if set.RepoPatterns != nil {
		add("repo_patterns", "repos", *set.RepoPatterns)
	}
	if set.RefPatterns != nil {
		add("ref_patterns", "refs", *set.RefPatterns)
	}
	if set.BWLimitKBps != nil {
		add("bwlimit_kbps", "bwlimit_kbps", *set.BWLimitKBps)
	}
	if set.Compress != nil {
		add("compress_level", "compress_level", *set.Compress)
	}
	if set.Every != nil {
		add("every_seconds", "every_seconds", *set.Every)
	}
	if set.AuthorizedKeys != nil {
		add("authorized_keys", "authorized_keys", *set.AuthorizedKeys)
	}
	if set.HostKey != nil {
		add("host_key", "host_key", *set.HostKey)
		cols = append(cols, "blocked_reason = ''")
	}
	if len(cols) == 0 {
		return errors.New("server set: nothing to change")
	}
	return s.change(ctx, a, "server.set", name, details, altersMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE servers SET "+strings.Join(cols, ", ")+" WHERE name = ?", append(args, name)...)
		if err != nil {
			return fmt.Errorf("set server %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("server", name)
		}
		if set.HostKey == nil {
			return nil
		}
		return requeueBlocked(ctx, tx, name)
	})
}

// SetReconciled records when a server's replicas were last compared.
func (s *Store) SetReconciled(ctx context.Context, id int64, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE servers SET reconciled_at = ? WHERE id = ?`, at.UTC().Format(timeFormat), id)
	if err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	return nil
}

// DefaultAuthorizedKeys is where a backup keeps cpm's key unless told.
const DefaultAuthorizedKeys = ".ssh/authorized_keys"

func authorizedOrDefault(p string) string {
	if p == "" {
		return DefaultAuthorizedKeys
	}
	return p
}

// SetKeyState records a server's place in a key rotation.
func (s *Store) SetKeyState(ctx context.Context, a Actor, name, state string) error {
	return s.change(ctx, a, "server.key", name, map[string]any{"state": state}, keepsMeta, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET key_state = ? WHERE name = ?`, state, name); err != nil {
			return fmt.Errorf("record key state of %s: %w", name, err)
		}
		return nil
	})
}

// FinishKeyRotation forgets every server's rotation state: the new key is
// now the only one.
func (s *Store) FinishKeyRotation(ctx context.Context, a Actor) error {
	return s.change(ctx, a, "server.rotate-key", "*", nil, keepsMeta, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET key_state = ''`); err != nil {
			return fmt.Errorf("finish key rotation: %w", err)
		}
		return nil
	})
}

// SetPeerKey replaces a neighbour's replication key (it rotated its key).
func (s *Store) SetPeerKey(ctx context.Context, a Actor, name, key, fingerprint string) error {
	return s.change(ctx, a, "server.peer-key", name, map[string]any{"peer_key": fingerprint}, altersMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE servers SET peer_key = ?, peer_fingerprint = ? WHERE name = ? AND role = 'neighbor'`, key, fingerprint, name)
		if err != nil {
			return fmt.Errorf("set peer key of %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("neighbour", name)
		}
		return nil
	})
}
