package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Repo is a repository known to the database. Its directory on disk is
// derived from Org and Name, never from what a client typed.
type Repo struct {
	ID          int64     `json:"-"`
	Org         string    `json:"org"`
	Name        string    `json:"name"`
	Public      bool      `json:"public"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	// PrimaryID is the node that takes its writes in a cluster (0
	// outside one).
	PrimaryID int64 `json:"-"`
}

// FullName is "ORG/REPO" with the canonical spelling from the database.
func (r Repo) FullName() string { return r.Org + "/" + r.Name }

// NewRepo describes a repository to create.
type NewRepo struct {
	Org         string
	Name        string
	Public      bool
	Description string
	Protected   []string // initial protected ref patterns
	// Placing, in a cluster, makes the creating node the primary and
	// chooses the replicas (zero outside a cluster).
	Placing Placing
}

// CreateRepo records a repository and its initial protected refs, then
// calls created inside the transaction so that the caller can make the
// repository on disk; if that fails, nothing is recorded.
func (s *Store) CreateRepo(ctx context.Context, a Actor, n NewRepo, created func(Repo) error) (Repo, error) {
	r := Repo{Name: n.Name, Public: n.Public, Description: n.Description}
	target := n.Org + "/" + n.Name
	err := s.change(ctx, a, "repo.create", target, map[string]any{"public": n.Public}, altersMeta, func(tx *Tx) error {
		o, err := orgByName(ctx, tx, n.Org)
		if err != nil {
			return err
		}
		r.Org = o.Name
		at := now()
		id, err := tx.InsertID(ctx,
			`INSERT INTO repos (org_id, name, public, description, created_at) VALUES (?, ?, ?, ?, ?)`,
			o.ID, n.Name, n.Public, n.Description, at)
		if isUnique(err) {
			var holder string
			tx.QueryRowContext(ctx, `SELECT ? || '/' || name FROM repos WHERE org_id = ? AND name = ?`, o.Name, o.ID, n.Name).Scan(&holder)
			return existsAs("repository", target, holder)
		}
		if err != nil {
			return fmt.Errorf("create repository %s: %w", target, err)
		}
		r.ID = id
		r.CreatedAt = parseTime(at)
		for _, p := range n.Protected {
			if _, err := tx.ExecContext(ctx, `INSERT INTO protected_refs (repo_id, pattern) VALUES (?, ?) ON CONFLICT DO NOTHING`, r.ID, p); err != nil {
				return fmt.Errorf("create repository %s: %w", target, err)
			}
		}
		if !n.Placing.Clustered() {
			n.Placing = s.placing
		}
		if n.Placing.Clustered() {
			if r.PrimaryID, err = placeNew(ctx, tx, n.Placing, r.ID); err != nil {
				return fmt.Errorf("create repository %s: %w", target, err)
			}
		}
		if created != nil {
			return created(r)
		}
		return nil
	})
	return r, err
}

const repoSelect = `
	SELECT r.id, o.name, r.name, r.public, r.description, r.created_at, coalesce(r.primary_id, 0)
	FROM repos r JOIN orgs o ON o.id = r.org_id`

func scanRepo(sc scanner) (Repo, error) {
	var r Repo
	var at string
	err := sc.Scan(&r.ID, &r.Org, &r.Name, &r.Public, &r.Description, &at, &r.PrimaryID)
	r.CreatedAt = parseTime(at)
	return r, err
}

func listRepos(ctx context.Context, q querier, where string, args ...any) ([]Repo, error) {
	rows, err := q.QueryContext(ctx, repoSelect+" WHERE "+where+" ORDER BY o.name, r.name", args...)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	defer rows.Close()
	var out []Repo
	for rows.Next() {
		r, err := scanRepo(rows)
		if err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Repos lists the repositories of one organisation, or all when org is "".
func (s *Store) Repos(ctx context.Context, org string) ([]Repo, error) {
	if org == "" {
		return listRepos(ctx, s.db, "true")
	}
	o, err := s.OrgByName(ctx, org)
	if err != nil {
		return nil, err
	}
	return listRepos(ctx, s.db, "r.org_id = ?", o.ID)
}

// Repo finds one repository by organisation and name (any letter case).
func (s *Store) Repo(ctx context.Context, org, name string) (Repo, error) {
	return repoByName(ctx, s.db, org, name)
}

func repoByName(ctx context.Context, q querier, org, name string) (Repo, error) {
	r, err := scanRepo(q.QueryRowContext(ctx, repoSelect+` WHERE o.name = ? AND r.name = ?`, org, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Repo{}, notFound("repository", org+"/"+name)
	}
	if err != nil {
		return Repo{}, fmt.Errorf("find repository %s/%s: %w", org, name, err)
	}
	return r, nil
}

// SetRepo changes a repository's visibility and description (nil leaves
// one as it is); changed runs inside the transaction with the result.
func (s *Store) SetRepo(ctx context.Context, a Actor, org, name string, public *bool, description *string, changed func(Repo) error) (Repo, error) {
	var r Repo
	details := map[string]any{}
	if public != nil {
		details["public"] = *public
	}
	if description != nil {
		details["description"] = *description
	}
	if len(details) == 0 {
		return r, errors.New("repo set: nothing to change (--public, --private or --description)")
	}
	err := s.change(ctx, a, "repo.set", org+"/"+name, details, altersMeta, func(tx *Tx) error {
		var err error
		if r, err = repoByName(ctx, tx, org, name); err != nil {
			return err
		}
		if public != nil {
			r.Public = *public
		}
		if description != nil {
			r.Description = *description
		}
		if _, err := tx.ExecContext(ctx, `UPDATE repos SET public = ?, description = ? WHERE id = ?`, r.Public, r.Description, r.ID); err != nil {
			return fmt.Errorf("set repository %s: %w", r.FullName(), err)
		}
		if changed != nil {
			return changed(r)
		}
		return nil
	})
	return r, err
}

// DeleteRepo forgets a repository; removed is called inside the
// transaction to move it out of the way on disk.
func (s *Store) DeleteRepo(ctx context.Context, a Actor, org, name string, removed func(Repo) error) (Repo, error) {
	var r Repo
	err := s.change(ctx, a, "repo.delete", org+"/"+name, nil, altersMeta, func(tx *Tx) error {
		var err error
		if r, err = repoByName(ctx, tx, org, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM repos WHERE id = ?`, r.ID); err != nil {
			return fmt.Errorf("delete repository %s: %w", r.FullName(), err)
		}
		if removed != nil {
			return removed(r)
		}
		return nil
	})
	return r, err
}

// Grant gives a user read, write or admin on a repository, replacing any
// earlier grant.
func (s *Store) Grant(ctx context.Context, a Actor, org, repo, user, perm string) error {
	return s.change(ctx, a, "repo.grant", org+"/"+repo, map[string]any{"user": user, "perm": perm}, altersMeta, func(tx *Tx) error {
		r, err := repoByName(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		uid, err := userID(ctx, tx, user)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO grants (repo_id, user_id, perm) VALUES (?, ?, ?)
			ON CONFLICT (repo_id, user_id) DO UPDATE SET perm = excluded.perm`, r.ID, uid, perm)
		if err != nil {
			return fmt.Errorf("grant %s on %s to %s: %w", perm, r.FullName(), user, err)
		}
		return nil
	})
}

// Revoke takes a user's grant on a repository away.
func (s *Store) Revoke(ctx context.Context, a Actor, org, repo, user string) error {
	return s.change(ctx, a, "repo.revoke", org+"/"+repo, map[string]any{"user": user}, altersMeta, func(tx *Tx) error {
		r, err := repoByName(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		uid, err := userID(ctx, tx, user)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE repo_id = ? AND user_id = ?`, r.ID, uid)
		if err != nil {
			return fmt.Errorf("revoke %s on %s: %w", user, r.FullName(), err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q has no grant on %s: %w", user, r.FullName(), ErrNotFound)
		}
		return nil
	})
}

// Grant is one user's direct permission on a repository.
type RepoGrant struct {
	User string `json:"user"`
	Perm string `json:"perm"`
}

// Grants lists the direct grants on a repository.
func (s *Store) Grants(ctx context.Context, org, repo string) ([]RepoGrant, error) {
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT u.name, g.perm FROM grants g JOIN users u ON u.id = g.user_id
		WHERE g.repo_id = ? ORDER BY u.name`, r.ID)
	if err != nil {
		return nil, fmt.Errorf("list grants on %s: %w", r.FullName(), err)
	}
	defer rows.Close()
	var out []RepoGrant
	for rows.Next() {
		var g RepoGrant
		if err := rows.Scan(&g.User, &g.Perm); err != nil {
			return nil, fmt.Errorf("list grants on %s: %w", r.FullName(), err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Protect adds a protected ref pattern; adding one twice is not an error.
func (s *Store) Protect(ctx context.Context, a Actor, org, repo, pattern string) error {
	return s.change(ctx, a, "repo.protect", org+"/"+repo, map[string]any{"pattern": pattern}, altersMeta, func(tx *Tx) error {
		r, err := repoByName(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO protected_refs (repo_id, pattern) VALUES (?, ?) ON CONFLICT DO NOTHING`, r.ID, pattern)
		return err
	})
}

// Unprotect removes a protected ref pattern.
func (s *Store) Unprotect(ctx context.Context, a Actor, org, repo, pattern string) error {
	return s.change(ctx, a, "repo.unprotect", org+"/"+repo, map[string]any{"pattern": pattern}, altersMeta, func(tx *Tx) error {
		r, err := repoByName(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM protected_refs WHERE repo_id = ? AND pattern = ?`, r.ID, pattern)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s has no protected pattern %q: %w", r.FullName(), pattern, ErrNotFound)
		}
		return nil
	})
}

// ProtectedRefs lists a repository's protected ref patterns.
func (s *Store) ProtectedRefs(ctx context.Context, repoID int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT pattern FROM protected_refs WHERE repo_id = ? ORDER BY pattern`, repoID)
	if err != nil {
		return nil, fmt.Errorf("list protected refs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
