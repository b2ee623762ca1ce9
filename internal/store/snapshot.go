package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// ErrNotSnapshotted: the database is PostgreSQL, which its operators back
// up (streaming replicas, pg_dump, the provider's snapshots); cpm copies
// only SQLite files.
var ErrNotSnapshotted = errors.New("the database is PostgreSQL: cpm does not snapshot it (back it up with PostgreSQL's own tools)")

// Snapshot writes a consistent copy of the live database to path (mode
// 0600) with SQLite's online backup, which reads one consistent state
// while writers carry on; a raw copy of a database in WAL mode could
// catch it half-written. The copy appears at path complete or not at all.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if s.db.d == postgres {
		return ErrNotSnapshotted
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*.db")
	if err != nil {
		return fmt.Errorf("snapshot database: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := s.backupTo(ctx, tmp.Name()); err != nil {
		return fmt.Errorf("snapshot database: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("snapshot database: %w", err)
	}
	return nil
}

func (s *Store) backupTo(ctx context.Context, path string) error {
	dst, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		return err
	}
	defer dst.Close()
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return err
	}
	defer dconn.Close()
	sconn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer sconn.Close()
	return dconn.Raw(func(d any) error {
		return sconn.Raw(func(src any) error {
			dc, ok1 := d.(*sqlite3.SQLiteConn)
			sc, ok2 := src.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not a sqlite3 connection")
			}
			b, err := dc.Backup("main", sc, "main")
			if err != nil {
				return err
			}
			// -1: every page in one step, under one read transaction.
			if _, err := b.Step(-1); err != nil {
				b.Finish()
				return err
			}
			return b.Finish()
		})
	})
}

// IntegrityCheck runs PRAGMA integrity_check and returns its complaints.
// On PostgreSQL, whose server keeps its own files whole, it checks that
// the database answers.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.db.d == postgres {
		var one int
		if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
			return fmt.Errorf("check %s: %w", s.path, err)
		}
		return nil
	}
	rows, err := s.db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check of %s: %s", s.path, strings.Join(problems, "; "))
	}
	return nil
}
