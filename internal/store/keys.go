package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// NewKey is a parsed public key about to be registered.
type NewKey struct {
	Fingerprint string
	Type        string
	PublicKey   string // authorized_keys form, no options, no comment
	Comment     string
}

// Key is a registered key: a user's, or a deploy key of one repository.
type Key struct {
	ID          int64     `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Comment     string    `json:"comment"`
	User        string    `json:"user,omitempty"`
	Repo        string    `json:"repo,omitempty"` // ORG/REPO, deploy keys only
	Write       bool      `json:"write"`
	PublicKey   string    `json:"public_key"`
	CreatedAt   time.Time `json:"created_at"`
}

func insertKey(ctx context.Context, tx *Tx, k NewKey, userID, repoID int64, write bool) (int64, error) {
	var uid, rid any
	if userID != 0 {
		uid = userID
	}
	if repoID != 0 {
		rid = repoID
	}
	if err := checkNotNodeKey(ctx, tx, k.Fingerprint); err != nil {
		return 0, err
	}
	id, err := tx.InsertID(ctx, `
		INSERT INTO ssh_keys (fingerprint, key_type, public_key, comment, user_id, repo_id, can_write, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.Fingerprint, k.Type, k.PublicKey, k.Comment, uid, rid, write, now())
	if isUnique(err) {
		// Only admins run this: say who holds it, so they know what to remove.
		return 0, fmt.Errorf("key %s %w: it is %s (a key belongs to one user or one deploy key)", k.Fingerprint, ErrExists, keyHolder(ctx, tx, k.Fingerprint))
	}
	if err != nil {
		return 0, fmt.Errorf("add key %s: %w", k.Fingerprint, err)
	}
	return id, nil
}

// checkNotNodeKey refuses fp when it is a cluster node's replication
// key: sshd would then let it in as the user and as the node, and a
// user holding a node's key would pass for that node.
func checkNotNodeKey(ctx context.Context, tx *Tx, fp string) error {
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM servers WHERE peer_fingerprint = ? AND role = 'node'`, fp).Scan(&name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("add key %s: %w", fp, err)
	}
	return fmt.Errorf("key %s %w: it is node %s's replication key", fp, ErrExists, name)
}

// keyHolder names who holds the key with fingerprint fp.
func keyHolder(ctx context.Context, tx *Tx, fp string) string {
	var user, org, repo sql.NullString
	err := tx.QueryRowContext(ctx, `
		SELECT u.name, o.name, r.name FROM ssh_keys k
		LEFT JOIN users u ON u.id = k.user_id
		LEFT JOIN repos r ON r.id = k.repo_id
		LEFT JOIN orgs o ON o.id = r.org_id
		WHERE k.fingerprint = ?`, fp).Scan(&user, &org, &repo)
	switch {
	case err != nil:
		return "already registered"
	case user.Valid:
		return "user " + user.String + "'s key"
	case repo.Valid:
		return "a deploy key of " + org.String + "/" + repo.String
	}
	return "already registered"
}

// AddUserKey registers a key for an existing user.
func (s *Store) AddUserKey(ctx context.Context, a Actor, user string, k NewKey) (Key, error) {
	var out Key
	err := s.change(ctx, a, "key.add", user, map[string]any{"fingerprint": k.Fingerprint, "type": k.Type}, altersMeta, func(tx *Tx) error {
		uid, err := userID(ctx, tx, user)
		if err != nil {
			return err
		}
		id, err := insertKey(ctx, tx, k, uid, 0, false)
		if err != nil {
			return err
		}
		out, err = keyByID(ctx, tx, id)
		return err
	})
	return out, err
}

// AddDeployKey binds a key to one repository, writable if write is set.
func (s *Store) AddDeployKey(ctx context.Context, a Actor, org, repo string, k NewKey, write bool) (Key, error) {
	var out Key
	target := org + "/" + repo
	err := s.change(ctx, a, "deploy-key.add", target, map[string]any{"fingerprint": k.Fingerprint, "write": write}, altersMeta, func(tx *Tx) error {
		r, err := repoByName(ctx, tx, org, repo)
		if err != nil {
			return err
		}
		id, err := insertKey(ctx, tx, k, 0, r.ID, write)
		if err != nil {
			return err
		}
		out, err = keyByID(ctx, tx, id)
		return err
	})
	return out, err
}

const keySelect = `
	SELECT k.id, k.fingerprint, k.key_type, k.comment, coalesce(u.name, ''),
	       coalesce(o.name || '/' || r.name, ''), k.can_write, k.public_key, k.created_at
	FROM ssh_keys k
	LEFT JOIN users u ON u.id = k.user_id
	LEFT JOIN repos r ON r.id = k.repo_id
	LEFT JOIN orgs o ON o.id = r.org_id`

type scanner interface{ Scan(...any) error }

func scanKey(sc scanner) (Key, error) {
	var k Key
	var at string
	err := sc.Scan(&k.ID, &k.Fingerprint, &k.Type, &k.Comment, &k.User, &k.Repo, &k.Write, &k.PublicKey, &at)
	k.CreatedAt = parseTime(at)
	return k, err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func keyByID(ctx context.Context, q querier, id int64) (Key, error) {
	return scanKey(q.QueryRowContext(ctx, keySelect+` WHERE k.id = ?`, id))
}

func (s *Store) listKeys(ctx context.Context, where string, args ...any) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, keySelect+" WHERE "+where+" ORDER BY k.id", args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// UserKeys lists the keys of one user, or of every user when user is "".
// Deploy keys are listed by DeployKeys.
func (s *Store) UserKeys(ctx context.Context, user string) ([]Key, error) {
	if user == "" {
		return s.listKeys(ctx, "k.user_id IS NOT NULL")
	}
	if _, err := s.UserByName(ctx, user); err != nil {
		return nil, err
	}
	return s.listKeys(ctx, "u.name = ?", user)
}

// AllKeys lists every key, users' and deploy keys, for authorized_keys.
func (s *Store) AllKeys(ctx context.Context) ([]Key, error) {
	return s.listKeys(ctx, "true")
}

// DeployKeys lists the deploy keys of one repository.
func (s *Store) DeployKeys(ctx context.Context, org, repo string) ([]Key, error) {
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return nil, err
	}
	return s.listKeys(ctx, "k.repo_id = ?", r.ID)
}

// KeyByFingerprint finds a registered key of either kind.
func (s *Store) KeyByFingerprint(ctx context.Context, fp string) (Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, keySelect+` WHERE k.fingerprint = ?`, fp))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, notFound("key", fp)
	}
	if err != nil {
		return Key{}, fmt.Errorf("find key %s: %w", fp, err)
	}
	return k, nil
}

// DeleteUserKey removes a user's key. A deploy key's fingerprint is refused
// with a pointer to the right command, so nobody removes the wrong thing.
func (s *Store) DeleteUserKey(ctx context.Context, a Actor, fp string) (Key, error) {
	return s.deleteKey(ctx, a, fp, false)
}

// DeleteDeployKey removes a deploy key.
func (s *Store) DeleteDeployKey(ctx context.Context, a Actor, fp string) (Key, error) {
	return s.deleteKey(ctx, a, fp, true)
}

func (s *Store) deleteKey(ctx context.Context, a Actor, fp string, deploy bool) (Key, error) {
	action := "key.remove"
	if deploy {
		action = "deploy-key.remove"
	}
	var k Key
	details := map[string]any{}
	err := s.change(ctx, a, action, fp, details, altersMeta, func(tx *Tx) error {
		var err error
		k, err = scanKey(tx.QueryRowContext(ctx, keySelect+` WHERE k.fingerprint = ?`, fp))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("key", fp)
		}
		if err != nil {
			return fmt.Errorf("find key %s: %w", fp, err)
		}
		switch {
		case deploy && k.Repo == "":
			return conflict("key %s belongs to user %q, not a deploy key; use key remove", fp, k.User)
		case !deploy && k.Repo != "":
			return conflict("key %s is a deploy key of %s; use repo deploy-key remove", fp, k.Repo)
		}
		if k.User != "" {
			details["user"] = k.User
		} else {
			details["repo"] = k.Repo
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM ssh_keys WHERE id = ?`, k.ID)
		return err
	})
	return k, err
}
