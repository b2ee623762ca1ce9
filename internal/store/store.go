// Package store owns cpm's database: its schema, its migrations and every
// SQL statement. Nothing outside this package speaks SQL.
//
// Two engines sit behind one API: SQLite (the default, a file in the data
// directory, WAL mode with a busy timeout and foreign keys on) and
// PostgreSQL (a postgres:// URL, for several machines sharing one
// database). Every change is written in one transaction together with its
// audit row, so the audit log never misses or invents a change.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is an open cpm database.
type Store struct {
	db *conn
	// path is the SQLite file, or the PostgreSQL URL without its password:
	// it appears in errors and logs.
	path string

	// Prepared once: the gateway asks these on every connection.
	keyByFingerprint *sql.Stmt
	keyByID          *sql.Stmt
	repoFacts        *sql.Stmt
	orgFacts         *sql.Stmt

	// placing is how CreateRepo places what this node creates when the
	// caller says nothing (PlaceAs); zero outside a cluster.
	placing Placing

	// changed runs after every change this Store commits (OnChange).
	changed atomic.Pointer[func()]
}

// ErrNoDatabase means the database file does not exist yet.
var ErrNoDatabase = errors.New("no database")

// Init creates the database file (mode 0600) if it is missing and brings
// its schema up to date. It is safe to call on an existing database.
func Init(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	// SQLite would create the file with the umask's mode; the database holds
	// every user's keys and permissions, so create it private first.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	f.Close()
	return open(ctx, path)
}

// Open opens an existing database, migrating an older schema and refusing
// a newer one.
func Open(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s; run cpm-admin init, or point --data-dir (or CPM_DATA_DIR) at an existing data directory", ErrNoDatabase, path)
	}
	return open(ctx, path)
}

// InitAt is Init for the database setting: a postgres:// URL, or empty
// for the SQLite file at sqlitePath.
func InitAt(ctx context.Context, database, sqlitePath string) (*Store, error) {
	if database == "" {
		return Init(ctx, sqlitePath)
	}
	return openPostgres(ctx, database, true)
}

// OpenAt is Open for the database setting: a postgres:// URL, or empty
// for the SQLite file at sqlitePath. A PostgreSQL database must have been
// initialised (cpm-admin init --database URL).
func OpenAt(ctx context.Context, database, sqlitePath string) (*Store, error) {
	if database == "" {
		return Open(ctx, sqlitePath)
	}
	return openPostgres(ctx, database, false)
}

func open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("mode", "rw")
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	// Writers take the write lock at BEGIN, so two writers queue on the busy
	// timeout instead of failing when a read transaction upgrades.
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", "-32768") // KiB: a 100,000-key store fits
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return start(ctx, &Store{db: &conn{db: db, d: sqlite}, path: abs})
}

// start migrates and prepares a freshly opened store.
func start(ctx context.Context, s *Store) (*Store, error) {
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the database.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.keyByFingerprint, s.keyByID, s.repoFacts, s.orgFacts} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}

// Path is the absolute path of the database file, or for PostgreSQL its
// URL without the password.
func (s *Store) Path() string { return s.path }

// Engine is "sqlite" or "postgres".
func (s *Store) Engine() string { return s.db.d.String() }

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists one engine's schema history. Both engines have the
// same versions: a version means the same schema on either.
func migrations(d dialect) ([]migration, error) {
	dir := "migrations/" + d.String()
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%04d_", &v); err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a 4-digit version", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3… without gaps", m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest schema this build knows.
func SchemaVersion() int {
	ms, _ := migrations(sqlite)
	return len(ms)
}

// migrate applies every migration newer than the database's schema
// version, each in its own transaction together with the version bump.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations(s.db.d)
	if err != nil {
		return err
	}
	if s.db.d == postgres {
		return s.migratePostgres(ctx, ms)
	}
	for {
		applied, err := s.migrateOne(ctx, ms)
		if err != nil {
			return err
		}
		if !applied {
			return nil
		}
	}
}

func (s *Store) migrateOne(ctx context.Context, ms []migration) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("open database %s: %w", s.path, err)
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return false, fmt.Errorf("read schema version of %s: %w", s.path, err)
	}
	switch {
	case have > len(ms):
		return false, fmt.Errorf("database %s has schema version %d, newer than this cpm knows (%d); upgrade cpm", s.path, have, len(ms))
	case have == len(ms):
		return false, nil
	}
	m := ms[have]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migrate %s to version %d (%s): %w", s.path, m.version, m.name, err)
	}
	// PRAGMA takes no bind parameters; the version is an int we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return false, fmt.Errorf("migrate %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate %s to version %d: %w", s.path, m.version, err)
	}
	return true, nil
}

// Version returns the database's schema version.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	q := "PRAGMA user_version"
	if s.db.d == postgres {
		q = versionSQL
	}
	err := s.db.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}

// Actor is who makes a change, for the audit log.
type Actor struct {
	Name       string // "alice", or "local:root" for the admin CLI
	RemoteAddr string
	// Via names the node of a cluster (or the neighbour) that carried the
	// actor's session here; its audit rows say so ("via" in details).
	Via string
	// Transport names how the actor's client came when not by ssh
	// ("http"); "transport" in details.
	Transport string
}

// change runs fn, writes its audit row and, when effect says it alters
// metadata, moves the metadata generation, all in one transaction.
func (s *Store) change(ctx context.Context, a Actor, action, target string, details map[string]any, effect metaEffect, fn func(tx *Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, target, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := insertAudit(ctx, tx, a, action, target, details); err != nil {
		return fmt.Errorf("%s %s: audit: %w", action, target, err)
	}
	if effect == altersMeta {
		if err := bumpMeta(ctx, tx); err != nil {
			return fmt.Errorf("%s %s: %w", action, target, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s %s: commit: %w", action, target, err)
	}
	if f := s.changed.Load(); f != nil {
		(*f)()
	}
	return nil
}

// OnChange has f run after every change this Store commits, before the
// change returns: a cache of this process drops what the change may have
// made stale before the process reads again (a push that creates its
// repository decides again at once), without waiting for the database's
// notification. Coarse on purpose: changes in a serving process are few.
func (s *Store) OnChange(f func()) { s.changed.Store(&f) }

func now() string { return time.Now().UTC().Format(timeFormat) }

// timeFormat sorts lexically in time order, which the audit log relies on.
const timeFormat = "2006-01-02T15:04:05.000Z"

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}

// NodeName is this node's name for its peers ("" until init sets it).
func (s *Store) NodeName(ctx context.Context) (string, error) {
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM node WHERE key = 'name'`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

// RenameNode sets this node's name, replacing the one it had.
func (s *Store) RenameNode(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO node (key, value) VALUES ('name', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, name); err != nil {
		return fmt.Errorf("rename node: %w", err)
	}
	return nil
}

// SetNodeName names this node, once; an existing name is kept.
func (s *Store) SetNodeName(ctx context.Context, name string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO node (key, value) VALUES ('name', ?) ON CONFLICT DO NOTHING`, name)
	return err
}
