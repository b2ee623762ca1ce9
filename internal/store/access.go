package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// KeyOwner is who a registered key speaks for: a user, or a deploy key of
// one repository. It is what the gateway looks up for every connection.
type KeyOwner struct {
	KeyID       int64
	Fingerprint string
	UserID      int64 // 0 for a deploy key
	User        string
	SiteAdmin   bool
	RepoID      int64 // deploy keys only
	CanWrite    bool  // deploy keys only
}

// RepoFacts is what authorization needs to know about one repository and
// one user's relation to it. For a repository that does not exist the
// organisation fields are still filled in, so that push-to-create can be
// decided.
type RepoFacts struct {
	OrgExists  bool
	OrgID      int64
	Org        string // canonical spelling
	RepoExists bool
	RepoID     int64
	Repo       string // canonical spelling
	Public     bool
	OrgRole    string // "", "member", "admin" or "owner"
	Grant      string // "", "read", "write" or "admin"
}

// The hot statements use scalar subqueries instead of joins on purpose: for
// a join SQLite's planner marks bound parameters as plan-relevant, so every
// new binding re-prepares the statement, doubling the cost of a lookup
// (measured with BenchmarkHotPath). Subqueries keep the plan fixed.
const ownerSelect = `
	SELECT k.id, k.fingerprint, coalesce(k.user_id, 0),
	       coalesce((SELECT name FROM users WHERE id = k.user_id), ''),
	       coalesce((SELECT is_admin FROM users WHERE id = k.user_id), 0),
	       coalesce(k.repo_id, 0), k.can_write
	FROM ssh_keys k`

// repoFactsSelect: ?1 user, ?2 org, ?3 repo. Names compare without case
// (column collation), and the canonical spelling comes back for building
// paths.
const repoFactsSelect = `
	SELECT r.org_id, (SELECT name FROM orgs WHERE id = r.org_id), r.id, r.name, r.public,
	       coalesce((SELECT role FROM memberships WHERE org_id = r.org_id AND user_id = ?1), ''),
	       coalesce((SELECT perm FROM grants WHERE repo_id = r.id AND user_id = ?1), '')
	FROM repos r
	WHERE r.org_id = (SELECT id FROM orgs WHERE name = ?2) AND r.name = ?3`

// orgFactsSelect is only asked when the repository does not exist
// (push-to-create).
const orgFactsSelect = `
	SELECT o.id, o.name,
	       coalesce((SELECT role FROM memberships WHERE org_id = o.id AND user_id = ?1), '')
	FROM orgs o WHERE o.name = ?2`

// CachedReads are the reads a serving node caches the answers of on
// PostgreSQL (internal/access/cached.go calls the store only through
// it). cachedQueries holds each one's statements: AuthTables must name
// every table they read, and the repos trigger every repos column (a
// test checks both, and that the two lists name the same methods).
type CachedReads interface {
	KeyOwnerByFingerprint(ctx context.Context, fp string) (KeyOwner, error)
	RepoFacts(ctx context.Context, userID int64, org, repo string) (RepoFacts, error)
}

var cachedQueries = map[string][]string{
	"KeyOwnerByFingerprint": {ownerSelect},
	"RepoFacts":             {repoFactsSelect, orgFactsSelect},
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.db.PrepareContext(ctx, q)
		return st
	}
	s.keyByFingerprint = prep(ownerSelect + ` WHERE k.fingerprint = ?`)
	s.keyByID = prep(ownerSelect + ` WHERE k.id = ?`)
	s.repoFacts = prep(repoFactsSelect)
	s.orgFacts = prep(orgFactsSelect)
	if err != nil {
		return fmt.Errorf("prepare statements: %w", err)
	}
	return nil
}

func scanOwner(row *sql.Row, what string) (KeyOwner, error) {
	var k KeyOwner
	err := row.Scan(&k.KeyID, &k.Fingerprint, &k.UserID, &k.User, &k.SiteAdmin, &k.RepoID, &k.CanWrite)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyOwner{}, notFound("key", what)
	}
	if err != nil {
		return KeyOwner{}, fmt.Errorf("find key %s: %w", what, err)
	}
	return k, nil
}

// KeyOwnerByFingerprint finds who a key speaks for.
func (s *Store) KeyOwnerByFingerprint(ctx context.Context, fp string) (KeyOwner, error) {
	return scanOwner(s.keyByFingerprint.QueryRowContext(ctx, fp), fp)
}

// KeyOwnerByID finds who a key speaks for, by the id used in forced commands.
func (s *Store) KeyOwnerByID(ctx context.Context, id int64) (KeyOwner, error) {
	return scanOwner(s.keyByID.QueryRowContext(ctx, id), fmt.Sprint(id))
}

// RepoFacts looks up a repository and userID's relation to it (userID 0
// for anonymous and deploy keys).
func (s *Store) RepoFacts(ctx context.Context, userID int64, org, repo string) (RepoFacts, error) {
	var f RepoFacts
	err := s.repoFacts.QueryRowContext(ctx, userID, org, repo).Scan(
		&f.OrgID, &f.Org, &f.RepoID, &f.Repo, &f.Public, &f.OrgRole, &f.Grant)
	if err == nil {
		f.OrgExists, f.RepoExists = true, true
		return f, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return RepoFacts{}, fmt.Errorf("look up %s/%s: %w", org, repo, err)
	}
	err = s.orgFacts.QueryRowContext(ctx, userID, org).Scan(&f.OrgID, &f.Org, &f.OrgRole)
	if errors.Is(err, sql.ErrNoRows) {
		return RepoFacts{}, nil
	}
	if err != nil {
		return RepoFacts{}, fmt.Errorf("look up %s: %w", org, err)
	}
	f.OrgExists = true
	return f, nil
}

// Readers selects the repositories ReadableRepoFacts returns; the zero
// value is an anonymous client's.
type Readers struct {
	UserID    int64 // a user's own relations: memberships and grants
	SiteAdmin bool  // every repository
	// DeployRepo is a deploy key's repository: it alone, and nothing
	// public (a deploy key reads only where it is bound).
	DeployRepo int64
}

// ReadableRepoFacts returns the facts for who.UserID of the
// repositories the principal may read: a site admin's every one, a
// deploy key's own, and otherwise those of the user's organisations
// (any role reads), those they hold a grant on (any level reads) and
// the public ones. Each part is picked by an index, so that the cost
// follows the answer, not the number of repositories; access still hands
// each row to authz, and a test compares the two on both engines.
func (s *Store) ReadableRepoFacts(ctx context.Context, who Readers) ([]RepoFacts, error) {
	if who.SiteAdmin {
		return s.AllRepoFacts(ctx, who.UserID)
	}
	ids, args := `SELECT id FROM repos WHERE id = ?2`, []any{who.UserID, who.DeployRepo}
	if who.DeployRepo == 0 {
		args = args[:1]
		ids = `SELECT r.id FROM memberships m JOIN repos r ON r.org_id = m.org_id WHERE m.user_id = ?1
			UNION SELECT repo_id FROM grants WHERE user_id = ?1
			UNION SELECT id FROM repos WHERE public = 1`
	}
	return s.queryRepoFacts(ctx, `WITH ids(id) AS (`+ids+`)
		SELECT o.id, o.name, r.id, r.name, r.public, coalesce(m.role, ''), coalesce(g.perm, '')
		FROM ids JOIN repos r ON r.id = ids.id JOIN orgs o ON o.id = r.org_id
		LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = ?1
		LEFT JOIN grants g ON g.repo_id = r.id AND g.user_id = ?1
		ORDER BY o.name, r.name`, args...)
}

// AllRepoFacts returns the facts of every repository for userID, for
// listing what a key may read. It is not on the hot path.
func (s *Store) AllRepoFacts(ctx context.Context, userID int64) ([]RepoFacts, error) {
	return s.queryRepoFacts(ctx, `
		SELECT o.id, o.name, r.id, r.name, r.public, coalesce(m.role, ''), coalesce(g.perm, '')
		FROM repos r JOIN orgs o ON o.id = r.org_id
		LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = ?1
		LEFT JOIN grants g ON g.repo_id = r.id AND g.user_id = ?1
		ORDER BY o.name, r.name`, userID)
}

// queryRepoFacts runs a query of existing repositories' facts.
func (s *Store) queryRepoFacts(ctx context.Context, query string, args ...any) ([]RepoFacts, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	defer rows.Close()
	var out []RepoFacts
	for rows.Next() {
		f := RepoFacts{OrgExists: true, RepoExists: true}
		if err := rows.Scan(&f.OrgID, &f.Org, &f.RepoID, &f.Repo, &f.Public, &f.OrgRole, &f.Grant); err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
