// Package storetest fills a cpm database with many synthetic users, keys,
// organisations and repositories, for benchmarks and load tests. It writes
// SQL directly (it lives under store, which owns SQL) so that building
// 100,000 keys takes seconds, not one transaction per key.
package storetest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "github.com/mattn/go-sqlite3"    // registers the "sqlite3" driver
)

// Size says how much to create.
type Size struct {
	Users       int
	KeysPerUser int
	Orgs        int
	ReposPerOrg int
	// Private makes every repository private (default: every tenth is
	// public).
	Private bool
	// Probes is how many distinct keys to return, spread evenly over all
	// keys (default 100), so stores of different sizes can be compared
	// under the same number of distinct callers.
	Probes int
}

// Probe is a key and a repository it has some access to, for lookups.
type Probe struct {
	Fingerprint string
	Org, Repo   string
}

// Fingerprint is the synthetic fingerprint of key n: the SHA256 form with
// a realistic, uniformly spread value.
func Fingerprint(n int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	sum := sha256.Sum256(b[:])
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// populateUsers inserts sz.Users users, each a member of one
// organisation with write on one repository and sz.KeysPerUser keys, and
// returns up to sz.Probes of the keys spread over them.
func populateUsers(ctx context.Context, tx *sql.Tx, pg bool, sz Size) ([]Probe, error) {
	const at = "2026-01-01T00:00:00.000Z"
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, rebind(pg, q), args...)
		return err
	}
	repos := sz.Orgs * sz.ReposPerOrg
	insKey, err := tx.PrepareContext(ctx, rebind(pg, `INSERT INTO ssh_keys (fingerprint, key_type, public_key, user_id, created_at) VALUES (?, 'ssh-ed25519', ?, ?, ?)`))
	if err != nil {
		return nil, err
	}
	defer insKey.Close()
	var probes []Probe
	if sz.Probes <= 0 {
		sz.Probes = 100
	}
	stride := max(1, sz.Users*sz.KeysPerUser/sz.Probes)
	for u := 1; u <= sz.Users; u++ {
		if err := exec(`INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)`, u, fmt.Sprintf("user%d", u), at); err != nil {
			return nil, fmt.Errorf("populate users: %w", err)
		}
		org := (u-1)%sz.Orgs + 1
		if err := exec(`INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, 'member')`, org, u); err != nil {
			return nil, fmt.Errorf("populate memberships: %w", err)
		}
		granted := (u*7919)%repos + 1
		if err := exec(`INSERT INTO grants (repo_id, user_id, perm) VALUES (?, ?, 'write')`, granted, u); err != nil {
			return nil, fmt.Errorf("populate grants: %w", err)
		}
		for k := 0; k < sz.KeysPerUser; k++ {
			n := (u-1)*sz.KeysPerUser + k
			fp := Fingerprint(n)
			if _, err := insKey.ExecContext(ctx, fp, "ssh-ed25519 synthetic-"+fp, u, at); err != nil {
				return nil, fmt.Errorf("populate keys: %w", err)
			}
			if n%stride == 0 && len(probes) < sz.Probes {
				probes = append(probes, Probe{
					Fingerprint: fp,
					Org:         fmt.Sprintf("org%d", (granted-1)/sz.ReposPerOrg+1),
					Repo:        fmt.Sprintf("repo%d", (granted-1)%sz.ReposPerOrg+1),
				})
			}
		}
	}
	return probes, nil
}

// populateRepos inserts sz.Orgs organisations of sz.ReposPerOrg
// repositories each, every tenth public unless sz.Private.
func populateRepos(ctx context.Context, tx *sql.Tx, pg bool, sz Size) error {
	const at = "2026-01-01T00:00:00.000Z"
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, rebind(pg, q), args...)
		return err
	}
	for o := 1; o <= sz.Orgs; o++ {
		if err := exec(`INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`, o, fmt.Sprintf("org%d", o), at); err != nil {
			return fmt.Errorf("populate orgs: %w", err)
		}
		for r := 1; r <= sz.ReposPerOrg; r++ {
			id := (o-1)*sz.ReposPerOrg + r
			if err := exec(`INSERT INTO repos (id, org_id, name, public, created_at) VALUES (?, ?, ?, ?, ?)`,
				id, o, fmt.Sprintf("repo%d", r), flag(!sz.Private && r%10 == 0), at); err != nil {
				return fmt.Errorf("populate repos: %w", err)
			}
		}
	}
	return nil
}

// Populate fills the (already initialised) database at path and returns
// probes spread over the whole population. User u is a member of org
// u % Orgs and has a write grant on one repository of another org.
func Populate(ctx context.Context, path string, sz Size) ([]Probe, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on&_busy_timeout=10000")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := populateRepos(ctx, tx, false, sz); err != nil {
		return nil, err
	}
	probes, err := populateUsers(ctx, tx, false, sz)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	// Fresh statistics, as a long-running database would have.
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return nil, err
	}
	// Leave the data in the main file, as a long-running node would have
	// it after its periodic checkpoints.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return nil, err
	}
	return probes, nil
}

// PopulatePostgres is Populate for an initialised PostgreSQL database at
// url. The rows carry explicit ids, so the identity sequences are moved
// past them afterwards, as the store expects.
func PopulatePostgres(ctx context.Context, url string, sz Size) ([]Probe, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := populateRepos(ctx, tx, true, sz); err != nil {
		return nil, err
	}
	probes, err := populateUsers(ctx, tx, true, sz)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{"users", "orgs", "repos", "ssh_keys"} {
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), coalesce(max(id), 0) + 1, false) FROM `+t); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, "ANALYZE")
	return probes, err
}

// rebind numbers the ? placeholders for PostgreSQL.
func rebind(pg bool, q string) string {
	if !pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// flag is a boolean as the schema stores it (INTEGER 0/1 on both engines).
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// MarkSynced records every queued job of the server named server in the
// SQLite database at path as synced and verified with the refs
// fingerprint fp, as the workers would after a sync of each replica:
// for benchmarks that lay the replicas down themselves.
func MarkSynced(ctx context.Context, path, server, fp string) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on&_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer db.Close()
	at := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	_, err = db.ExecContext(ctx, `UPDATE replication_jobs SET synced_generation = generation, state = 'done',
		next_attempt_at = ?1, attempts = 0, last_error = '', last_success_at = ?1, dirty_since = '', pending_since = '',
		lease_owner = '', lease_until = '', fingerprint = ?2
		WHERE server_id = (SELECT id FROM servers WHERE name = ?3)`, at, fp, server)
	if err != nil {
		return fmt.Errorf("mark %s's jobs synced: %w", server, err)
	}
	return nil
}
