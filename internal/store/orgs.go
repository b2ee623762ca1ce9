package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Org is an organisation: a namespace of repositories with members.
type Org struct {
	ID        int64     `json:"-"`
	Name      string    `json:"name"`
	Repos     int       `json:"repos"`
	Members   int       `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// Member is a user's role in an organisation.
type Member struct {
	User string `json:"user"`
	Role string `json:"role"`
}

// CreateOrg adds an organisation, with owner as its first owner when given.
func (s *Store) CreateOrg(ctx context.Context, a Actor, name, owner string) (Org, error) {
	o := Org{Name: name}
	details := map[string]any{}
	if owner != "" {
		details["owner"] = owner
	}
	err := s.change(ctx, a, "org.create", name, details, altersMeta, func(tx *Tx) error {
		at := now()
		id, err := tx.InsertID(ctx, `INSERT INTO orgs (name, created_at) VALUES (?, ?)`, name, at)
		if isUnique(err) {
			var holder string
			tx.QueryRowContext(ctx, `SELECT name FROM orgs WHERE name = ?`, name).Scan(&holder)
			return existsAs("organisation", name, holder)
		}
		if err != nil {
			return fmt.Errorf("create organisation %s: %w", name, err)
		}
		o.ID = id
		o.CreatedAt = parseTime(at)
		if owner == "" {
			return nil
		}
		uid, err := userID(ctx, tx, owner)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, 'owner')`, o.ID, uid)
		o.Members = 1
		return err
	})
	return o, err
}

const orgSelect = `
	SELECT o.id, o.name, o.created_at,
	       (SELECT count(*) FROM repos r WHERE r.org_id = o.id),
	       (SELECT count(*) FROM memberships m WHERE m.org_id = o.id)
	FROM orgs o`

func scanOrg(sc scanner) (Org, error) {
	var o Org
	var at string
	err := sc.Scan(&o.ID, &o.Name, &at, &o.Repos, &o.Members)
	o.CreatedAt = parseTime(at)
	return o, err
}

// Orgs lists every organisation.
func (s *Store) Orgs(ctx context.Context) ([]Org, error) {
	rows, err := s.db.QueryContext(ctx, orgSelect+` ORDER BY o.name`)
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	defer rows.Close()
	var out []Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, fmt.Errorf("list organisations: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// OrgByName finds one organisation.
func (s *Store) OrgByName(ctx context.Context, name string) (Org, error) {
	return orgByName(ctx, s.db, name)
}

func orgByName(ctx context.Context, q querier, name string) (Org, error) {
	o, err := scanOrg(q.QueryRowContext(ctx, orgSelect+` WHERE o.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, notFound("organisation", name)
	}
	if err != nil {
		return Org{}, fmt.Errorf("find organisation %s: %w", name, err)
	}
	return o, nil
}

// DeleteOrg removes an organisation. While it has repositories it refuses
// unless force is set; then the repositories go too, and removed is called
// with them inside the transaction (to move them to the trash) so that the
// database and the disk change together or not at all.
func (s *Store) DeleteOrg(ctx context.Context, a Actor, name string, force bool, removed func([]Repo) error) ([]Repo, error) {
	var repos []Repo
	details := map[string]any{"force": force}
	err := s.change(ctx, a, "org.delete", name, details, altersMeta, func(tx *Tx) error {
		o, err := orgByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if repos, err = listRepos(ctx, tx, `r.org_id = ?`, o.ID); err != nil {
			return err
		}
		if len(repos) > 0 && !force {
			noun := "repositories"
			if len(repos) == 1 {
				noun = "repository"
			}
			return conflict("organisation %q still has %d %s; delete them first or use --force", name, len(repos), noun)
		}
		var names []string
		for _, r := range repos {
			names = append(names, r.FullName())
		}
		details["repos"] = names
		if _, err := tx.ExecContext(ctx, `DELETE FROM repos WHERE org_id = ?`, o.ID); err != nil {
			return fmt.Errorf("delete organisation %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM orgs WHERE id = ?`, o.ID); err != nil {
			return fmt.Errorf("delete organisation %s: %w", name, err)
		}
		if removed != nil && len(repos) > 0 {
			return removed(repos)
		}
		return nil
	})
	return repos, err
}

// SetMember adds a user to an organisation or changes their role. Taking
// the owner role from the last owner is refused.
func (s *Store) SetMember(ctx context.Context, a Actor, org, user, role string) error {
	return s.change(ctx, a, "org.member.set", org+"/"+user, map[string]any{"role": role}, altersMeta, func(tx *Tx) error {
		oid, uid, err := orgAndUser(ctx, tx, org, user)
		if err != nil {
			return err
		}
		if role != "owner" {
			if err := keepOwner(ctx, tx, oid, uid, org, user); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, ?)
			ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role`, oid, uid, role)
		if err != nil {
			return fmt.Errorf("set %s's role in %s: %w", user, org, err)
		}
		return nil
	})
}

// RemoveMember takes a user out of an organisation; not its last owner.
func (s *Store) RemoveMember(ctx context.Context, a Actor, org, user string) error {
	return s.change(ctx, a, "org.member.remove", org+"/"+user, nil, altersMeta, func(tx *Tx) error {
		oid, uid, err := orgAndUser(ctx, tx, org, user)
		if err != nil {
			return err
		}
		if err := keepOwner(ctx, tx, oid, uid, org, user); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE org_id = ? AND user_id = ?`, oid, uid)
		if err != nil {
			return fmt.Errorf("remove %s from %s: %w", user, org, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q is not a member of %q: %w", user, org, ErrNotFound)
		}
		return nil
	})
}

// keepOwner refuses a change that would leave org without an owner because
// user is its only one.
func keepOwner(ctx context.Context, tx *Tx, oid, uid int64, org, user string) error {
	if err := lockOwners(ctx, tx, `id = ?`, oid); err != nil {
		return fmt.Errorf("check owners of %s: %w", org, err)
	}
	var isOwner, others int
	err := tx.QueryRowContext(ctx, `
		SELECT count(*) FILTER (WHERE user_id = ?), count(*) FILTER (WHERE user_id <> ?)
		FROM memberships WHERE org_id = ? AND role = 'owner'`, uid, uid, oid).Scan(&isOwner, &others)
	if err != nil {
		return fmt.Errorf("check owners of %s: %w", org, err)
	}
	if isOwner > 0 && others == 0 {
		return conflict("user %q is the last owner of %q; make someone else owner first", user, org)
	}
	return nil
}

// lockOwners serializes changes to the owners of the organisations that
// where selects. SQLite's write transaction already does; on PostgreSQL at
// READ COMMITTED two transactions removing two different owners would
// each still see the other owner and both commit, leaving none. Locking
// the organisations' rows (in id order, so two such changes cannot
// deadlock) makes the second wait and then count again.
func lockOwners(ctx context.Context, tx *Tx, where string, args ...any) error {
	if tx.d != postgres {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM orgs WHERE `+where+` ORDER BY id FOR UPDATE`, args...)
	if err != nil {
		return err
	}
	return rows.Close()
}

func orgAndUser(ctx context.Context, tx *Tx, org, user string) (int64, int64, error) {
	o, err := orgByName(ctx, tx, org)
	if err != nil {
		return 0, 0, err
	}
	uid, err := userID(ctx, tx, user)
	return o.ID, uid, err
}

// Members lists an organisation's members, owners first.
func (s *Store) Members(ctx context.Context, org string) ([]Member, error) {
	o, err := s.OrgByName(ctx, org)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.org_id = ?
		ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.name`, o.ID)
	if err != nil {
		return nil, fmt.Errorf("list members of %s: %w", org, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.User, &m.Role); err != nil {
			return nil, fmt.Errorf("list members of %s: %w", org, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
