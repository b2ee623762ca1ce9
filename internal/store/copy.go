package store

import (
	"context"
	"fmt"
	"strings"
)

// copyTables is every table of cpm's metadata, parents before children so
// that foreign keys hold at every insert. node holds this node's name and
// the metadata generation.
var copyTables = []string{
	"users", "orgs", "memberships", "repos", "grants", "ssh_keys", "protected_refs",
	"ssh_cas", "lfs_locks", "servers", "replication_jobs", "audit_log", "node", "diverged_refs",
	"tokens", "token_repos",
}

// identityTables have an id that PostgreSQL hands out: after a copy with
// explicit ids their sequences must start above the highest.
var identityTables = []string{"users", "orgs", "repos", "ssh_keys", "ssh_cas", "lfs_locks", "servers", "audit_log", "tokens"}

// TableCount is one table's rows in the source and in the copy.
type TableCount struct {
	Table  string `json:"table"`
	Source int64  `json:"source"`
	Copied int64  `json:"copied"`
}

// CopyTo copies every row of s (SQLite) into dst (PostgreSQL, initialised
// and empty) and returns both sides' counts, which it has checked agree.
//
// The source is read in one transaction, which on SQLite takes the write
// lock (_txlock=immediate): a running installation's writers wait the few
// seconds the copy takes (their busy timeout) rather than change what is
// being copied. The copy is one transaction too: all or nothing.
func (s *Store) CopyTo(ctx context.Context, dst *Store) ([]TableCount, error) {
	if s.db.d != sqlite || dst.db.d != postgres {
		return nil, fmt.Errorf("copy: only from SQLite to PostgreSQL")
	}
	if err := dst.checkEmpty(ctx); err != nil {
		return nil, err
	}
	src, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("copy: read %s: %w", s.path, err)
	}
	defer src.Rollback()
	out, err := dst.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("copy: write %s: %w", dst.path, err)
	}
	defer out.Rollback()
	// The seeded node row gives way to the source's, in the copy's own
	// transaction: a failed copy leaves the target as it was.
	if _, err := out.ExecContext(ctx, `DELETE FROM node`); err != nil {
		return nil, fmt.Errorf("copy: write %s: %w", dst.path, err)
	}
	var counts []TableCount
	for _, t := range copyTables {
		n, err := copyTable(ctx, src, out, t)
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", t, err)
		}
		counts = append(counts, TableCount{Table: t, Source: n})
	}
	used := highWaterMarks(ctx, src)
	for _, t := range identityTables {
		// Past every id SQLite ever gave, not only past those still in
		// use: an AUTOINCREMENT id (LFS locks) never comes back.
		if _, err := out.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), greatest(coalesce(max(id), 0), ?) + 1, false) FROM `+t, used[t]); err != nil {
			return nil, fmt.Errorf("copy %s: identity: %w", t, err)
		}
	}
	for i := range counts {
		if err := out.QueryRowContext(ctx, `SELECT count(*) FROM `+counts[i].Table).Scan(&counts[i].Copied); err != nil {
			return nil, fmt.Errorf("count %s: %w", counts[i].Table, err)
		}
		if counts[i].Copied != counts[i].Source {
			return counts, fmt.Errorf("copy %s: %d rows in the source, %d in the copy; nothing was written", counts[i].Table, counts[i].Source, counts[i].Copied)
		}
	}
	if err := out.Commit(); err != nil {
		return nil, fmt.Errorf("copy: commit: %w", err)
	}
	return counts, nil
}

// checkEmpty refuses a database that already holds cpm metadata: a copy
// into it would mix two installations. node may hold the metadata
// generation that migration 4 seeds.
func (s *Store) checkEmpty(ctx context.Context) error {
	for _, t := range copyTables {
		if t == "node" {
			continue
		}
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return fmt.Errorf("check %s is empty: %w", s.path, err)
		}
		if n > 0 {
			return fmt.Errorf("%s is not empty (%s has %d rows): migrate into a new database", s.path, t, n)
		}
	}
	return nil
}

// copyTable copies one table row by row with its own column names (the
// schemas of one version have the same columns on both engines).
func copyTable(ctx context.Context, src, dst *Tx, table string) (int64, error) {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	insert := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` + placeholders(len(cols)) + `)`
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b) // every column is TEXT or INTEGER
			}
		}
		if _, err := dst.ExecContext(ctx, insert, vals...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// highWaterMarks reads SQLite's record of the highest id each
// AUTOINCREMENT table ever used (none: an empty map).
func highWaterMarks(ctx context.Context, src *Tx) map[string]int64 {
	used := map[string]int64{}
	rows, err := src.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
	if err != nil {
		return used // no AUTOINCREMENT table has been written yet
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var seq int64
		if rows.Scan(&name, &seq) == nil {
			used[name] = seq
		}
	}
	return used
}
