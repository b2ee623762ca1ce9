package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"cpm/internal/dburl"
)

// versionSQL reads the schema version on PostgreSQL, which has no
// user_version: one row in cpm_schema, written with each migration.
const versionSQL = `SELECT version FROM cpm_schema`

// migrationLock is the advisory lock key under which PostgreSQL migrates
// ("cpm" in ASCII): several nodes may start at once against one database,
// and each version must be applied exactly once.
const migrationLock = 0x63706d

// scrub keeps the password out of an error from the driver, which may
// quote the connection string it was given.
func scrub(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, secret := range dburl.Secrets(raw) {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	msg = dburl.Redact(msg)
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func openPostgres(ctx context.Context, raw string, create bool) (*Store, error) {
	shown, err := dburl.Parse(raw)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", withDeadPeerLimits(withConnectTimeout(raw)))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", shown, scrub(err, raw))
	}
	// Workers, the gateway and the hooks ask at once; idle connections are
	// kept so a lookup does not pay for a new one, but not for ever (a
	// failover behind a proxy leaves them dead), and one process never
	// takes more than its share of the server's max_connections.
	db.SetMaxIdleConns(16)
	db.SetMaxOpenConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database %s: %w", shown, scrub(err, raw))
	}
	s := &Store{db: &conn{db: db, d: postgres}, path: shown}
	if !create {
		var found sql.NullString
		if err := s.db.QueryRowContext(ctx, `SELECT to_regclass('cpm_schema')::text`).Scan(&found); err != nil {
			db.Close()
			return nil, fmt.Errorf("open database %s: %w", shown, scrub(err, raw))
		}
		if !found.Valid {
			db.Close()
			return nil, fmt.Errorf("%w in %s; run cpm-admin init --database URL", ErrNoDatabase, shown)
		}
	}
	st, err := start(ctx, s)
	return st, scrub(err, raw)
}

// migratePostgres applies each missing version in a transaction of its
// own, holding the advisory lock: a node that waited finds the work done.
// DDL is transactional on PostgreSQL, so a failed version leaves nothing.
func (s *Store) migratePostgres(ctx context.Context, ms []migration) error {
	// Every process that opens the store comes here (each hook of a
	// push, sshd's key lookups): when the schema is current, one read and
	// no lock, so that a migration waiting for its lock stalls nobody.
	var have int
	if s.db.QueryRowContext(ctx, versionSQL).Scan(&have) == nil && have == len(ms) {
		return nil
	}
	for {
		applied, err := s.migratePostgresOne(ctx, ms)
		if err != nil {
			return err
		}
		if !applied {
			return nil
		}
	}
}

func (s *Store) migratePostgresOne(ctx context.Context, ms []migration) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("open database %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLock); err != nil {
		return false, fmt.Errorf("lock %s for migration: %w", s.path, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS cpm_schema (
		one     INTEGER PRIMARY KEY DEFAULT 1 CHECK (one = 1),
		version INTEGER NOT NULL)`); err != nil {
		return false, fmt.Errorf("migrate %s: %w", s.path, err)
	}
	var have int
	err = tx.QueryRowContext(ctx, versionSQL).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		have, err = 0, nil
	}
	if err != nil {
		return false, fmt.Errorf("read schema version of %s: %w", s.path, err)
	}
	switch {
	case have > len(ms):
		return false, fmt.Errorf("database %s has schema version %d, newer than this cpm knows (%d); upgrade cpm", s.path, have, len(ms))
	case have == len(ms):
		return false, tx.Commit()
	}
	m := ms[have]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migrate %s to version %d (%s): %w", s.path, m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cpm_schema (one, version) VALUES (1, ?)
		ON CONFLICT (one) DO UPDATE SET version = excluded.version`, m.version); err != nil {
		return false, fmt.Errorf("migrate %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate %s to version %d: %w", s.path, m.version, err)
	}
	return true, nil
}

// ServerVersion is the database server's version: "SQLite 3.x" or the
// PostgreSQL server_version, with its major number (0 for SQLite).
func (s *Store) ServerVersion(ctx context.Context) (string, int, error) {
	if s.db.d != postgres {
		var v string
		err := s.db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&v)
		return "SQLite " + v, 0, err
	}
	var v string
	var num int
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int`).Scan(&v, &num); err != nil {
		return "", 0, fmt.Errorf("read server version of %s: %w", s.path, err)
	}
	return "PostgreSQL " + v, num / 10000, nil
}

// withConnectTimeout gives a URL without connect_timeout one of 10 s: by
// default the driver waits for as long as TCP does, and a hook or a key
// lookup must not hang on an unreachable database.
func withConnectTimeout(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	if q.Get("connect_timeout") != "" {
		return raw
	}
	q.Set("connect_timeout", "10")
	u.RawQuery = q.Encode()
	return u.String()
}

// deadPeerLimits are server settings each connection asks for unless its
// URL sets them (pgx sends unknown URL parameters as run-time settings):
// the server probes an idle client's socket after 5 s, gives up after
// three unanswered probes 2 s apart or 15 s of unacknowledged data, and
// ends a session idle inside a transaction for a minute. A node whose
// machine dies while it holds a repository's row (a replica write, a
// MarkDirtyAs) thus frees it within seconds, not TCP's two hours.
func deadPeerLimits() [][2]string {
	return [][2]string{
		{"tcp_keepalives_idle", "5"},
		{"tcp_keepalives_interval", "2"},
		{"tcp_keepalives_count", "3"},
		{"tcp_user_timeout", "15000"},
		{"idle_in_transaction_session_timeout", "60000"},
	}
}

// withDeadPeerLimits adds deadPeerLimits to a URL that does not set them.
func withDeadPeerLimits(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for _, kv := range deadPeerLimits() {
		if q.Get(kv[0]) == "" {
			q.Set(kv[0], kv[1])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
