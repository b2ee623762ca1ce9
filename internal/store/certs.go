package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// CA is a certificate authority whose user certificates authenticate.
type CA struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

const caSelect = `SELECT name, key_type, public_key, fingerprint, created_at FROM ssh_cas`

func scanCA(sc scanner) (CA, error) {
	var c CA
	var at string
	err := sc.Scan(&c.Name, &c.Type, &c.PublicKey, &c.Fingerprint, &at)
	c.CreatedAt = parseTime(at)
	return c, err
}

// AddCA trusts a certificate authority.
func (s *Store) AddCA(ctx context.Context, a Actor, c CA) (CA, error) {
	err := s.change(ctx, a, "ca.add", c.Name, map[string]any{"fingerprint": c.Fingerprint}, altersMeta, func(tx *Tx) error {
		_, err := tx.ExecMayConflict(ctx, `INSERT INTO ssh_cas (name, key_type, public_key, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)`,
			c.Name, c.Type, c.PublicKey, c.Fingerprint, now())
		if isUnique(err) {
			var holder string
			tx.QueryRowContext(ctx, `SELECT name FROM ssh_cas WHERE fingerprint = ? OR name = ?`, c.Fingerprint, c.Name).Scan(&holder)
			return existsAs("certificate authority", c.Name, holder)
		}
		if err != nil {
			return fmt.Errorf("add certificate authority %s: %w", c.Name, err)
		}
		c, err = scanCA(tx.QueryRowContext(ctx, caSelect+` WHERE name = ?`, c.Name))
		return err
	})
	return c, err
}

// CAs lists the trusted certificate authorities.
func (s *Store) CAs(ctx context.Context) ([]CA, error) {
	rows, err := s.db.QueryContext(ctx, caSelect+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list certificate authorities: %w", err)
	}
	defer rows.Close()
	var out []CA
	for rows.Next() {
		c, err := scanCA(rows)
		if err != nil {
			return nil, fmt.Errorf("list certificate authorities: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CAByFingerprint finds a trusted authority by its key, or ErrNotFound.
func (s *Store) CAByFingerprint(ctx context.Context, fp string) (CA, error) {
	c, err := scanCA(s.db.QueryRowContext(ctx, caSelect+` WHERE fingerprint = ?`, fp))
	if errors.Is(err, sql.ErrNoRows) {
		return CA{}, ErrNotFound
	}
	return c, err
}

// RemoveCA stops trusting an authority: its certificates no longer
// authenticate, from the next connection on.
func (s *Store) RemoveCA(ctx context.Context, a Actor, name string) error {
	return s.change(ctx, a, "ca.remove", name, nil, altersMeta, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM ssh_cas WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("remove certificate authority %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("certificate authority", name)
		}
		return nil
	})
}

// revokedKeysKRL is the key of the `node` table that holds the key
// revocation list `ca revoke` installed, in base64: the table is shared
// by every node of a cluster, so the list is in force on all of them the
// moment it is written.
const revokedKeysKRL = "revoked_keys_krl"

// SetRevokedKeys records krl (an OpenSSH key revocation list) as the one
// in force, replacing the one before, with its audit row.
func (s *Store) SetRevokedKeys(ctx context.Context, a Actor, krl []byte) error {
	return s.change(ctx, a, "ca.revoke", "*", map[string]any{"bytes": len(krl)}, keepsMeta, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO node (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			revokedKeysKRL, base64.StdEncoding.EncodeToString(krl))
		if err != nil {
			return fmt.Errorf("record the revocation list: %w", err)
		}
		return nil
	})
}

// RevokedKeys returns the revocation list SetRevokedKeys recorded, nil
// when none was.
func (s *Store) RevokedKeys(ctx context.Context) ([]byte, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM node WHERE key = ?`, revokedKeysKRL).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the revocation list: %w", err)
	}
	krl, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("read the revocation list: %w", err)
	}
	return krl, nil
}

// SetPrincipal sets the certificate principal that names user ("" for
// the user's own name). A principal names one user only.
func (s *Store) SetPrincipal(ctx context.Context, a Actor, user, principal string) error {
	var p any
	if principal != "" {
		p = principal
	}
	return s.change(ctx, a, "user.principal", user, map[string]any{"principal": principal}, altersMeta, func(tx *Tx) error {
		if principal != "" {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE `+s.db.d.nocase("name")+` <> ? AND coalesce(principal, name) = ?`, user, principal).Scan(&other)
			if err == nil {
				return fmt.Errorf("principal %q already names user %s: %w", principal, other, ErrExists)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		res, err := tx.ExecMayConflict(ctx, `UPDATE users SET principal = ? WHERE name = ?`, p, user)
		if isUnique(err) {
			return fmt.Errorf("principal %q already names another user: %w", principal, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("set principal of %s: %w", user, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("user", user)
		}
		return nil
	})
}

// UserByPrincipal finds the user a certificate principal names: the one
// whose principal it is, else the one of that name without a principal
// of their own. ErrNotFound when it names nobody.
func (s *Store) UserByPrincipal(ctx context.Context, principal string) (KeyOwner, error) {
	var o KeyOwner
	err := s.db.QueryRowContext(ctx, `
		SELECT id, name, is_admin FROM users
		WHERE principal = ?1 OR (principal IS NULL AND `+s.db.d.exactCase("name")+` = ?1)
		ORDER BY principal IS NULL LIMIT 1`, principal).Scan(&o.UserID, &o.User, &o.SiteAdmin)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyOwner{}, ErrNotFound
	}
	if err != nil {
		return KeyOwner{}, fmt.Errorf("look up principal %q: %w", principal, err)
	}
	return o, nil
}
