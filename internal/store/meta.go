package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Meta is the authorization metadata a peer needs to serve replicas of
// a set of repositories with the same permissions as their origin: the
// repositories and their organisations, every member with a role, every
// grantee, every site admin, their keys, the deploy keys and protected
// ref patterns. Rows keep the origin's ids, so the peer's copy is the
// origin's, restricted to what it replicates.
type Meta struct {
	Generation int64           `json:"generation"`
	Users      []MetaUser      `json:"users"`
	Orgs       []MetaOrg       `json:"orgs"`
	Members    []MetaMember    `json:"members"`
	Repos      []MetaRepo      `json:"repos"`
	Grants     []MetaGrant     `json:"grants"`
	Keys       []MetaKey       `json:"keys"`
	Protected  []MetaProtected `json:"protected"`
}

type MetaUser struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Admin bool   `json:"admin,omitempty"`
}

type MetaOrg struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type MetaMember struct {
	OrgID  int64  `json:"org"`
	UserID int64  `json:"user"`
	Role   string `json:"role"`
}

type MetaRepo struct {
	ID          int64  `json:"id"`
	OrgID       int64  `json:"org"`
	Name        string `json:"name"`
	Public      bool   `json:"public,omitempty"`
	Description string `json:"description,omitempty"`
}

type MetaGrant struct {
	RepoID int64  `json:"repo"`
	UserID int64  `json:"user"`
	Perm   string `json:"perm"`
}

// MetaKey is a user's key (UserID set) or a deploy key (RepoID set).
type MetaKey struct {
	ID          int64  `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Type        string `json:"type"`
	PublicKey   string `json:"public_key"`
	UserID      int64  `json:"user,omitempty"`
	RepoID      int64  `json:"repo,omitempty"`
	CanWrite    bool   `json:"write,omitempty"`
}

type MetaProtected struct {
	RepoID  int64  `json:"repo"`
	Pattern string `json:"pattern"`
}

// Keep returns the metadata restricted to the repositories keep accepts
// (by ORG and REPO), with their grants, deploy keys and protected refs;
// users, organisations and members stay.
func (m Meta) Keep(keep func(org, repo string) bool) Meta {
	orgName := map[int64]string{}
	for _, o := range m.Orgs {
		orgName[o.ID] = o.Name
	}
	drop := map[int64]bool{}
	for _, r := range m.Repos {
		if !keep(orgName[r.OrgID], r.Name) {
			drop[r.ID] = true
		}
	}
	if len(drop) == 0 {
		return m
	}
	m.Repos = filter(m.Repos, func(x MetaRepo) bool { return !drop[x.ID] })
	m.Grants = filter(m.Grants, func(x MetaGrant) bool { return !drop[x.RepoID] })
	m.Keys = filter(m.Keys, func(x MetaKey) bool { return !drop[x.RepoID] })
	m.Protected = filter(m.Protected, func(x MetaProtected) bool { return !drop[x.RepoID] })
	return m
}

func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// metaEffect says whether a change alters what this node publishes as
// metadata: users, keys, organisations, members, repositories, grants,
// protected refs and servers. Each change says so where it is made; those
// that alter it move the metadata generation, so that every backup and
// neighbour receives the metadata again. Pushes, syncs, queue and key
// rotation bookkeeping, and promotion leave it as it is.
type metaEffect bool

const (
	altersMeta metaEffect = true
	keepsMeta  metaEffect = false
)

// bumpMeta moves the metadata generation, inside a change's transaction.
// BIGINT: on PostgreSQL INTEGER is 32 bits (SQLite reads both as 64).
func bumpMeta(ctx context.Context, tx *Tx) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO node (key, value) VALUES ('meta_generation', '1')
		ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(node.value AS BIGINT) + 1 AS TEXT)`)
	return err
}

const metaGenerationSQL = `SELECT coalesce((SELECT CAST(value AS BIGINT) FROM node WHERE key = 'meta_generation'), 0)`

// MetaGeneration grows with every change of users, keys, organisations,
// repositories, grants or servers (every change but pushes and syncs, in
// the change's own transaction): a server whose copy is older needs the
// metadata again.
func (s *Store) MetaGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := s.db.QueryRowContext(ctx, metaGenerationSQL).Scan(&g); err != nil {
		return 0, fmt.Errorf("metadata generation: %w", err)
	}
	return g, nil
}

// metaQuery reads one table of the metadata, a row at a time.
type metaQuery struct {
	q    string
	scan func(sc scanner) error
}

// metaQueries read the metadata into m.
func metaQueries(m *Meta) []metaQuery {
	// Every user and key travels: a public repository is readable by
	// anyone with a registered key, so all of them matter to a replica.
	return []metaQuery{
		{`SELECT id, name, is_admin FROM users ORDER BY id`, func(sc scanner) error {
			var u MetaUser
			err := sc.Scan(&u.ID, &u.Name, &u.Admin)
			m.Users = append(m.Users, u)
			return err
		}},
		{`SELECT id, name FROM orgs WHERE id IN (SELECT org_id FROM repos) ORDER BY id`, func(sc scanner) error {
			var o MetaOrg
			err := sc.Scan(&o.ID, &o.Name)
			m.Orgs = append(m.Orgs, o)
			return err
		}},
		{`SELECT org_id, user_id, role FROM memberships WHERE org_id IN (SELECT org_id FROM repos) ORDER BY org_id, user_id`, func(sc scanner) error {
			var mm MetaMember
			err := sc.Scan(&mm.OrgID, &mm.UserID, &mm.Role)
			m.Members = append(m.Members, mm)
			return err
		}},
		{`SELECT id, org_id, name, public, description FROM repos ORDER BY id`, func(sc scanner) error {
			var r MetaRepo
			err := sc.Scan(&r.ID, &r.OrgID, &r.Name, &r.Public, &r.Description)
			m.Repos = append(m.Repos, r)
			return err
		}},
		{`SELECT repo_id, user_id, perm FROM grants ORDER BY repo_id, user_id`, func(sc scanner) error {
			var g MetaGrant
			err := sc.Scan(&g.RepoID, &g.UserID, &g.Perm)
			m.Grants = append(m.Grants, g)
			return err
		}},
		{`SELECT id, fingerprint, key_type, public_key, coalesce(user_id, 0), coalesce(repo_id, 0), can_write
		  FROM ssh_keys ORDER BY id`, func(sc scanner) error {
			var k MetaKey
			err := sc.Scan(&k.ID, &k.Fingerprint, &k.Type, &k.PublicKey, &k.UserID, &k.RepoID, &k.CanWrite)
			m.Keys = append(m.Keys, k)
			return err
		}},
		{`SELECT repo_id, pattern FROM protected_refs ORDER BY repo_id, pattern`, func(sc scanner) error {
			var p MetaProtected
			err := sc.Scan(&p.RepoID, &p.Pattern)
			m.Protected = append(m.Protected, p)
			return err
		}},
	}
}

// ExportMeta reads the metadata of every repository, in one read
// transaction so that the parts belong together.
func (s *Store) ExportMeta(ctx context.Context) (Meta, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Meta{}, fmt.Errorf("export metadata: %w", err)
	}
	defer tx.Rollback()
	var m Meta
	if err := tx.QueryRowContext(ctx, metaGenerationSQL).Scan(&m.Generation); err != nil {
		return Meta{}, fmt.Errorf("export metadata: %w", err)
	}
	for _, q := range metaQueries(&m) {
		if err := eachRow(ctx, tx, q.q, q.scan); err != nil {
			return Meta{}, fmt.Errorf("export metadata: %w", err)
		}
	}
	return m, nil
}

func eachRow(ctx context.Context, tx *Tx, q string, scan func(scanner) error) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ReplaceMeta makes this database's users, keys, organisations,
// repositories, grants and protected refs exactly m, in one transaction:
// a reader sees the old metadata or the new, never a mix. It is meant for
// a peer's copy of an origin's metadata, never for a node's own database.
// The database's constraints (CHECKs, foreign keys, unique names and
// fingerprints) apply to every row, so inconsistent input changes nothing.
func (s *Store) ReplaceMeta(ctx context.Context, a Actor, m Meta) error {
	details := map[string]any{"generation": m.Generation, "repos": len(m.Repos), "users": len(m.Users), "keys": len(m.Keys)}
	return s.change(ctx, a, "meta.replace", "peer", details, keepsMeta, func(tx *Tx) error {
		for _, t := range []string{"ssh_keys", "grants", "protected_refs", "memberships", "replication_jobs", "repos", "orgs", "users"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
				return fmt.Errorf("replace metadata: clear %s: %w", t, err)
			}
		}
		at := now()
		ins := func(what, q string, args ...any) error {
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("replace metadata: %s: %w", what, err)
			}
			return nil
		}
		for _, u := range m.Users {
			if err := ins("user "+u.Name, `INSERT INTO users (id, name, is_admin, created_at) VALUES (?, ?, ?, ?)`, u.ID, u.Name, u.Admin, at); err != nil {
				return err
			}
		}
		for _, o := range m.Orgs {
			if err := ins("org "+o.Name, `INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`, o.ID, o.Name, at); err != nil {
				return err
			}
		}
		for _, mm := range m.Members {
			if err := ins("member", `INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, ?)`, mm.OrgID, mm.UserID, mm.Role); err != nil {
				return err
			}
		}
		for _, r := range m.Repos {
			if err := ins("repository "+r.Name, `INSERT INTO repos (id, org_id, name, public, description, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				r.ID, r.OrgID, r.Name, r.Public, r.Description, at); err != nil {
				return err
			}
		}
		for _, g := range m.Grants {
			if err := ins("grant", `INSERT INTO grants (repo_id, user_id, perm) VALUES (?, ?, ?)`, g.RepoID, g.UserID, g.Perm); err != nil {
				return err
			}
		}
		for _, k := range m.Keys {
			if err := ins("key "+k.Fingerprint, `
				INSERT INTO ssh_keys (id, fingerprint, key_type, public_key, user_id, repo_id, can_write, created_at)
				VALUES (?, ?, ?, ?, nullif(?, 0), nullif(?, 0), ?, ?)`,
				k.ID, k.Fingerprint, k.Type, k.PublicKey, k.UserID, k.RepoID, k.CanWrite, at); err != nil {
				return err
			}
		}
		for _, p := range m.Protected {
			if err := ins("protected ref", `INSERT INTO protected_refs (repo_id, pattern) VALUES (?, ?)`, p.RepoID, p.Pattern); err != nil {
				return err
			}
		}
		return nil
	})
}
