package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	Actor      string         `json:"actor"`
	RemoteAddr string         `json:"remote_addr,omitempty"`
	Action     string         `json:"action"`
	Target     string         `json:"target"`
	Details    map[string]any `json:"details,omitempty"`
}

func insertAudit(ctx context.Context, tx *Tx, a Actor, action, target string, details map[string]any) error {
	details = withActor(details, map[string]string{"via": a.Via, "transport": a.Transport})
	d := []byte("{}")
	if len(details) > 0 {
		var err error
		if d, err = json.Marshal(details); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO audit_log (at, actor, remote_addr, action, target, details) VALUES (?, ?, ?, ?, ?, ?)`,
		now(), a.Name, a.RemoteAddr, action, target, string(d))
	return err
}

// withActor adds what the actor's session says of itself (the node that
// carried it, its transport) to details, where details does not say it
// already; details itself is never changed.
func withActor(details map[string]any, from map[string]string) map[string]any {
	var out map[string]any
	for k, v := range from {
		if _, set := details[k]; v == "" || set {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(details)+len(from))
			for dk, dv := range details {
				out[dk] = dv
			}
		}
		out[k] = v
	}
	if out == nil {
		return details
	}
	return out
}

// Audit returns the newest entries first; limit <= 0 means all.
func (s *Store) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = math.MaxInt64 // both engines; PostgreSQL refuses SQLite's -1
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, at, actor, remote_addr, action, target, details FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at, details string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.RemoteAddr, &e.Action, &e.Target, &details); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = parseTime(at)
		if details != "" && details != "{}" {
			_ = json.Unmarshal([]byte(details), &e.Details)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Record writes an audit row for something that changed outside the
// database, such as an accepted push.
func (s *Store) Record(ctx context.Context, a Actor, action, target string, details map[string]any) error {
	return s.change(ctx, a, action, target, details, keepsMeta, func(*Tx) error { return nil })
}
