package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is a person with ssh keys.
type User struct {
	ID        int64     `json:"-"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	Keys      int       `json:"keys"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateUser adds a user and, if key is not nil, their first key, in one
// transaction: a rejected key leaves no user behind.
func (s *Store) CreateUser(ctx context.Context, a Actor, name string, admin bool, key *NewKey) (User, error) {
	u := User{Name: name, Admin: admin, CreatedAt: parseTime(now())}
	details := map[string]any{"admin": admin}
	if key != nil {
		details["fingerprint"] = key.Fingerprint
	}
	err := s.change(ctx, a, "user.add", name, details, altersMeta, func(tx *Tx) error {
		id, err := tx.InsertID(ctx, `INSERT INTO users (name, is_admin, created_at) VALUES (?, ?, ?)`, name, admin, now())
		if isUnique(err) {
			var holder string
			tx.QueryRowContext(ctx, `SELECT name FROM users WHERE name = ?`, name).Scan(&holder)
			return existsAs("user", name, holder)
		}
		if err != nil {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		u.ID = id
		if key != nil {
			if _, err := insertKey(ctx, tx, *key, u.ID, 0, false); err != nil {
				return err
			}
			u.Keys = 1
		}
		return nil
	})
	return u, err
}

// Users lists every user with the number of keys each has.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT u.id, u.name, u.is_admin, u.created_at,
		       (SELECT count(*) FROM ssh_keys k WHERE k.user_id = u.id)
		FROM users u ORDER BY u.name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var at string
		if err := rows.Scan(&u.ID, &u.Name, &u.Admin, &at, &u.Keys); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.CreatedAt = parseTime(at)
		out = append(out, u)
	}
	return out, rows.Err()
}

// UserByName finds one user.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	var u User
	var at string
	err := s.db.QueryRowContext(ctx, `
		SELECT u.id, u.name, u.is_admin, u.created_at,
		       (SELECT count(*) FROM ssh_keys k WHERE k.user_id = u.id)
		FROM users u WHERE u.name = ?`, name).Scan(&u.ID, &u.Name, &u.Admin, &at, &u.Keys)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, notFound("user", name)
	}
	if err != nil {
		return User{}, fmt.Errorf("find user %s: %w", name, err)
	}
	u.CreatedAt = parseTime(at)
	return u, nil
}

// DeleteUser removes a user with their keys, memberships and grants. It
// refuses while the user is the last owner of an organisation, which would
// leave that organisation without anyone to run it.
func (s *Store) DeleteUser(ctx context.Context, a Actor, name string) error {
	return s.change(ctx, a, "user.remove", name, nil, altersMeta, func(tx *Tx) error {
		id, err := userID(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := lockOwners(ctx, tx, `id IN (SELECT org_id FROM memberships WHERE user_id = ? AND role = 'owner')`, id); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT o.name FROM memberships m JOIN orgs o ON o.id = m.org_id
			WHERE m.user_id = ? AND m.role = 'owner'
			  AND NOT EXISTS (SELECT 1 FROM memberships m2
			                  WHERE m2.org_id = m.org_id AND m2.role = 'owner' AND m2.user_id <> m.user_id)
			ORDER BY o.name`, id)
		if err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
		var orgs []string
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				rows.Close()
				return fmt.Errorf("remove user %s: %w", name, err)
			}
			orgs = append(orgs, o)
		}
		rows.Close()
		if len(orgs) > 0 {
			return conflict("user %q is the last owner of %s; add another owner first", name, strings.Join(orgs, ", "))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
		return nil
	})
}

func userID(ctx context.Context, tx *Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("user", name)
	}
	if err != nil {
		return 0, fmt.Errorf("find user %s: %w", name, err)
	}
	return id, nil
}
