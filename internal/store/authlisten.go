package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// AuthTables are the tables the reads a serving node caches
// (KeyOwnerByFingerprint, RepoFacts) depend on. On PostgreSQL each has a
// trigger that moves auth_version and notifies cpm_auth (migration 17);
// a test checks this list against the cached queries and the triggers.
var AuthTables = []string{"users", "ssh_keys", "orgs", "memberships", "grants", "repos"}

// AuthWindow is how long after the start of its last successful round
// trip on the listen connection a node may answer from its cache. Every
// change committed before that round trip started was seen by it, so
// AuthWindow after a commit no node answers from a cache that predates
// it, whether it acknowledged the change or not.
const AuthWindow = 2 * time.Second

// AuthRoundTrip is how long a listener waits for a notification before
// it proves its connection current again, and AuthConfirmTimeout bounds
// that proof's round trip (internal/authcache): a live listener stamps
// seen_at up to their sum apart.
const (
	AuthRoundTrip      = time.Second
	AuthConfirmTimeout = time.Second
)

// authLive is how long after its last seen_at stamp a listener still
// counts as live for a waiter: its longest gap between stamps, the
// window, and a margin for the clocks.
const authLive = AuthWindow + AuthRoundTrip + AuthConfirmTimeout + 2*authMargin

// authMargin covers the time between a listener's round trip starting
// (its clock) and the database stamping seen_at (the database's).
const authMargin = 500 * time.Millisecond

// authPoll is how often a command that changed access looks for the acknowledgements.
const authPoll = 20 * time.Millisecond

// AuthCacheable reports whether a serving process may cache this store's
// authentication reads: on PostgreSQL, whose triggers announce every
// change. SQLite has no such channel, and its reads cost no round trip.
func (s *Store) AuthCacheable() bool { return s.db.d == postgres }

// AuthListener is one serving process's dedicated connection listening
// for cpm_auth, with its row in auth_listeners.
type AuthListener struct {
	conn *sql.Conn
	id   int64
}

// ListenAuth opens a connection of its own, listens on cpm_auth and
// registers the listener under name (for doctor and logs). Only on
// PostgreSQL.
func (s *Store) ListenAuth(ctx context.Context, name string) (*AuthListener, error) {
	if !s.AuthCacheable() {
		return nil, errors.New("listen for authentication changes: only on PostgreSQL")
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("listen for authentication changes: %w", err)
	}
	l := &AuthListener{conn: c}
	if _, err := c.ExecContext(ctx, `LISTEN cpm_auth`); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen for authentication changes: %w", err)
	}
	// Rows of listeners that died without saying so are ignored by the
	// waiters once stale; those older than a day go.
	if _, err := c.ExecContext(ctx, `DELETE FROM auth_listeners WHERE seen_at < now() - interval '1 day'`); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen for authentication changes: %w", err)
	}
	if err := c.QueryRowContext(ctx, `INSERT INTO auth_listeners (name) VALUES ($1) RETURNING id`, name).Scan(&l.id); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen for authentication changes: %w", err)
	}
	return l, nil
}

// Wait waits up to timeout for a notification on cpm_auth and reports
// whether one came. A timeout is no error; a broken connection is.
func (l *AuthListener) Wait(ctx context.Context, timeout time.Duration) (bool, error) {
	var got bool
	err := l.conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("listen connection is a %T", dc)
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		n, err := pc.Conn().WaitForNotification(wctx)
		if err != nil && wctx.Err() != nil && ctx.Err() == nil && !pc.Conn().IsClosed() {
			return nil // the timeout: the connection stays usable
		}
		got = n != nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("wait for authentication changes: %w", err)
	}
	return got, nil
}

// Confirm records that this listener has emptied its cache for every
// change up to applied, and returns the version now committed: every
// change committed before this round trip started is counted in it (READ
// COMMITTED takes the statement's snapshot after it arrives), and its
// notification was delivered before the answer.
func (l *AuthListener) Confirm(ctx context.Context, applied int64) (int64, error) {
	var current int64
	err := l.conn.QueryRowContext(ctx, `UPDATE auth_listeners SET version = $1, seen_at = now() WHERE id = $2
		RETURNING (SELECT v FROM auth_version)`, applied, l.id).Scan(&current)
	if err != nil {
		return 0, fmt.Errorf("confirm the authentication cache: %w", err)
	}
	return current, nil
}

// Close removes the listener's row and closes its connection (never back
// into the pool: it would carry the LISTEN to other users).
func (l *AuthListener) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if l.id != 0 {
		l.conn.ExecContext(ctx, `DELETE FROM auth_listeners WHERE id = $1`, l.id) //nolint:errcheck // a stale row is ignored once old
	}
	l.conn.Raw(func(dc any) error { //nolint:errcheck // closing
		if pc, ok := dc.(*stdlib.Conn); ok {
			return pc.Conn().Close(ctx)
		}
		return nil
	})
	l.conn.Close()
}

// AuthVersion is the number of changes to the AuthTables committed so
// far (0 on SQLite).
func (s *Store) AuthVersion(ctx context.Context) (int64, error) {
	if !s.AuthCacheable() {
		return 0, nil
	}
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT v FROM auth_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read authentication version: %w", err)
	}
	return v, nil
}

// WaitAuthApplied returns once no serving process can answer from a cache
// older than the changes committed so far: when every listener seen
// within authLive has acknowledged the current version, or
// after AuthWindow and a margin, by when one that did not has stopped
// answering from its cache. The caller calls it after its commit. On
// SQLite it returns at once: nothing caches there.
func (s *Store) WaitAuthApplied(ctx context.Context) error {
	if !s.AuthCacheable() {
		return nil
	}
	v, err := s.AuthVersion(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(AuthWindow + authMargin)
	stale := authLive.Seconds()
	for {
		var behind int
		err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM auth_listeners
			WHERE version < ? AND seen_at > now() - make_interval(secs => ?)`, v, stale).Scan(&behind)
		if err != nil {
			return fmt.Errorf("wait for the nodes to apply the change: %w", err)
		}
		if behind == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(authPoll):
		}
	}
}
