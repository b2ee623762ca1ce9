package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenKind says whom an access token speaks for and who made it.
type TokenKind string

const (
	// TokenUser is a user's token (token create).
	TokenUser TokenKind = "user"
	// TokenDeploy is bound to one repository (repo deploy-token create).
	TokenDeploy TokenKind = "deploy"
	// TokenLFS is a user's or deploy key's short-lived token handed out
	// by git-lfs-authenticate; token list leaves these out.
	TokenLFS TokenKind = "lfs"
)

// NewToken is an access token about to be stored. Exactly one of UserID
// and RepoID is set: RepoID for a deploy token (kind deploy, or lfs for
// a deploy key's), which may write unless ReadOnly.
type NewToken struct {
	UserID, RepoID int64
	// KeyID is the ssh key a token of kind lfs was made through: its
	// removal removes the token (0: none).
	KeyID     int64
	Name      string
	Hash      string  // token.Hash of the secret; the secret itself is never stored
	RepoIDs   []int64 // a user token's scope: empty for every repository of its user
	ReadOnly  bool
	ExpiresAt time.Time // zero: never
	Kind      TokenKind
}

// Token is a stored access token as token list shows it.
type Token struct {
	ID       int64      `json:"id"`
	User     string     `json:"user"` // "" for a deploy token
	Name     string     `json:"name"`
	Scope    string     `json:"scope"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used"`
	Expires  *time.Time `json:"expires"`

	Kind     TokenKind `json:"-"`
	Repo     string    `json:"-"` // a deploy token's ORG/REPO
	Repos    []string  `json:"-"` // a scoped token's repositories
	ReadOnly bool      `json:"-"`
}

// TokenOwner is whom a valid token speaks for, with its limits.
type TokenOwner struct {
	ID        int64
	Name      string
	Kind      TokenKind
	UserID    int64 // 0 for a deploy token
	User      string
	SiteAdmin bool
	RepoID    int64 // a deploy token's repository
	ReadOnly  bool
	// KeyID is the ssh key a token of kind lfs was made through, and
	// KeyCanWrite that key's write permission now (a deploy key's).
	KeyID       int64
	KeyCanWrite bool
	// Scoped: the token reaches RepoIDs only (within its user's rights).
	Scoped   bool
	RepoIDs  []int64
	LastUsed time.Time // zero: never
}

func validateNewToken(t NewToken) error {
	switch {
	case (t.UserID == 0) == (t.RepoID == 0):
		return fmt.Errorf("a token speaks for one user or one repository")
	case t.Kind != TokenUser && t.Kind != TokenDeploy && t.Kind != TokenLFS:
		return fmt.Errorf("unknown token kind %q", t.Kind)
	case t.Kind == TokenDeploy && t.RepoID == 0:
		return fmt.Errorf("a deploy token needs a repository")
	case t.Kind == TokenUser && t.UserID == 0:
		return fmt.Errorf("a user token needs a user")
	case t.RepoID != 0 && len(t.RepoIDs) > 0:
		return fmt.Errorf("a deploy token is bound to its repository and takes no scope")
	case len(t.Hash) != 64:
		return fmt.Errorf("a token's hash is hex SHA-256")
	case !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(time.Now()):
		return fmt.Errorf("a token's expiry must lie in the future")
	}
	return nil
}

// CreateToken stores a token, with an audit row that names it but never
// its hash. Tokens of kind lfs live minutes and are made for every
// git-lfs-authenticate: they leave no audit row and do not move the
// metadata generation, and each one made clears the expired ones.
func (s *Store) CreateToken(ctx context.Context, a Actor, t NewToken) (Token, error) {
	if err := validateNewToken(t); err != nil {
		return Token{}, fmt.Errorf("create token %q: %w", t.Name, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Token{}, fmt.Errorf("create token %q: %w", t.Name, err)
	}
	defer tx.Rollback()
	if t.Kind == TokenLFS {
		if err := lfsMintRoom(ctx, tx, t); err != nil {
			return Token{}, err
		}
	}
	out, err := insertToken(ctx, tx, t)
	if err != nil {
		return Token{}, err
	}
	if t.Kind != TokenLFS {
		if err := auditToken(ctx, tx, a, out); err != nil {
			return Token{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return Token{}, fmt.Errorf("create token %q: commit: %w", t.Name, err)
	}
	return out, nil
}

// auditToken writes token create's audit row and moves the metadata
// generation, so that backups get a snapshot with the token.
func auditToken(ctx context.Context, tx *Tx, a Actor, t Token) error {
	details := map[string]any{"id": t.ID, "name": t.Name, "scope": t.Scope}
	if t.Expires != nil {
		details["expires"] = t.Expires.Format(timeFormat)
	}
	action, target := "token.create", t.User
	if t.Kind == TokenDeploy {
		action, target = "deploy-token.create", t.Repo
	}
	if err := insertAudit(ctx, tx, a, action, target, details); err != nil {
		return fmt.Errorf("%s %s: audit: %w", action, target, err)
	}
	return bumpMeta(ctx, tx)
}

func insertToken(ctx context.Context, tx *Tx, t NewToken) (Token, error) {
	var uid, rid, kid any
	if t.KeyID != 0 {
		kid = t.KeyID
	}
	if t.UserID != 0 {
		uid = t.UserID
	}
	if t.RepoID != 0 {
		rid = t.RepoID
	}
	expires := ""
	if !t.ExpiresAt.IsZero() {
		expires = t.ExpiresAt.UTC().Format(timeFormat)
	}
	id, err := tx.InsertID(ctx, `
		INSERT INTO tokens (hash, kind, name, user_id, repo_id, key_id, read_only, scoped, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, string(t.Kind), t.Name, uid, rid, kid, t.ReadOnly, len(t.RepoIDs) > 0, now(), expires)
	if err != nil {
		// A foreign key: the user or repository went meanwhile.
		return Token{}, fmt.Errorf("create token %q: %w", t.Name, err)
	}
	for _, r := range t.RepoIDs {
		_, err := tx.ExecContext(ctx, `INSERT INTO token_repos (token_id, repo_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, r)
		if err != nil {
			return Token{}, fmt.Errorf("create token %q: scope: %w", t.Name, err)
		}
	}
	return tokenByID(ctx, tx, id)
}

const tokenSelect = `
	SELECT t.id, t.kind, t.name, coalesce(u.name, ''), coalesce(o.name || '/' || r.name, ''),
	       t.read_only, t.scoped, t.created_at, t.expires_at, t.last_used_at
	FROM tokens t
	LEFT JOIN users u ON u.id = t.user_id
	LEFT JOIN repos r ON r.id = t.repo_id
	LEFT JOIN orgs o ON o.id = r.org_id`

func scanToken(sc scanner) (Token, bool, error) {
	var t Token
	var kind, created, expires, used string
	var scoped bool
	err := sc.Scan(&t.ID, &kind, &t.Name, &t.User, &t.Repo, &t.ReadOnly, &scoped, &created, &expires, &used)
	t.Kind, t.Created = TokenKind(kind), parseTime(created)
	t.Expires, t.LastUsed = optionalTime(expires), optionalTime(used)
	return t, scoped, err
}

func optionalTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := parseTime(s)
	return &t
}

// scopeOf fills in a token's repositories and its scope as token list
// shows it: "all" or the repositories, then "deploy" and "read-only" or
// "write" where they apply.
func scopeOf(ctx context.Context, q querier, t *Token, scoped bool) error {
	if scoped {
		rows, err := q.QueryContext(ctx, `
			SELECT o.name || '/' || r.name FROM token_repos tr
			JOIN repos r ON r.id = tr.repo_id JOIN orgs o ON o.id = r.org_id
			WHERE tr.token_id = ? ORDER BY 1`, t.ID)
		if err != nil {
			return fmt.Errorf("token %d: scope: %w", t.ID, err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return fmt.Errorf("token %d: scope: %w", t.ID, err)
			}
			t.Repos = append(t.Repos, name)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("token %d: scope: %w", t.ID, err)
		}
	}
	var parts []string
	switch {
	case t.Repo != "":
		parts = []string{t.Repo, "deploy"}
	case scoped && len(t.Repos) == 0:
		parts = []string{"none (its repositories were deleted)"}
	case scoped:
		parts = []string{strings.Join(t.Repos, " ")}
	default:
		parts = []string{"all"}
	}
	switch {
	case t.ReadOnly:
		parts = append(parts, "read-only")
	case t.Repo != "":
		parts = append(parts, "write")
	}
	t.Scope = strings.Join(parts, ", ")
	return nil
}

func tokenByID(ctx context.Context, q querier, id int64) (Token, error) {
	t, scoped, err := scanToken(q.QueryRowContext(ctx, tokenSelect+` WHERE t.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, notFound("token", fmt.Sprint(id))
	}
	if err != nil {
		return Token{}, fmt.Errorf("find token %d: %w", id, err)
	}
	return t, scopeOf(ctx, q, &t, scoped)
}

// Tokens lists the user and deploy tokens, of one user when user is not
// "" (an unknown user is ErrNotFound), oldest first. Expired ones are
// listed until revoked, so that nobody wonders where one went.
func (s *Store) Tokens(ctx context.Context, user string) ([]Token, error) {
	where, args := `t.kind IN ('user', 'deploy')`, []any{}
	if user != "" {
		if _, err := s.UserByName(ctx, user); err != nil {
			return nil, err
		}
		where, args = where+` AND u.name = ?`, append(args, user)
	}
	rows, err := s.db.QueryContext(ctx, tokenSelect+` WHERE `+where+` ORDER BY t.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var out []Token
	var scoped []bool
	for rows.Next() {
		t, sc, err := scanToken(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out, scoped = append(out, t), append(scoped, sc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	for i := range out {
		if err := scopeOf(ctx, s.db, &out[i], scoped[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RevokeToken deletes a token of any kind; it stops working at once.
func (s *Store) RevokeToken(ctx context.Context, a Actor, id int64) (Token, error) {
	var t Token
	details := map[string]any{"id": id}
	target := fmt.Sprint(id)
	err := s.change(ctx, a, "token.revoke", target, details, altersMeta, func(tx *Tx) error {
		var err error
		if t, err = tokenByID(ctx, tx, id); err != nil {
			return err
		}
		details["name"] = t.Name
		if t.Repo != "" {
			details["repo"] = t.Repo
		} else {
			details["user"] = t.User
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id); err != nil {
			return fmt.Errorf("revoke token %d: %w", id, err)
		}
		return nil
	})
	return t, err
}

const tokenOwnerSelect = `
	SELECT t.id, t.hash, t.kind, t.name, coalesce(t.user_id, 0), coalesce(u.name, ''), coalesce(u.is_admin, 0),
	       coalesce(t.repo_id, 0), t.read_only, t.scoped, t.last_used_at,
	       coalesce(t.key_id, 0), coalesce(k.can_write, 0)
	FROM tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN ssh_keys k ON k.id = t.key_id`

// TokenOwnerByHash finds whom a token speaks for by its hash. A token
// that does not exist, was revoked or has expired is ErrNotFound alike.
func (s *Store) TokenOwnerByHash(ctx context.Context, hash string) (TokenOwner, error) {
	return s.tokenOwner(ctx, `t.hash = ?`, hash, hash)
}

// TokenOwnerByID is TokenOwnerByHash by the token's id, for a process
// that was told the id by the one that checked the secret (cpm-hook).
func (s *Store) TokenOwnerByID(ctx context.Context, id int64) (TokenOwner, error) {
	return s.tokenOwner(ctx, `t.id = ?`, id, "")
}

func (s *Store) tokenOwner(ctx context.Context, where string, arg any, hash string) (TokenOwner, error) {
	var o TokenOwner
	var kind, stored, used string
	err := s.db.QueryRowContext(ctx, tokenOwnerSelect+` WHERE `+where+` AND (t.expires_at = '' OR t.expires_at > ?)`, arg, now()).Scan(
		&o.ID, &stored, &kind, &o.Name, &o.UserID, &o.User, &o.SiteAdmin, &o.RepoID, &o.ReadOnly, &o.Scoped, &used, &o.KeyID, &o.KeyCanWrite)
	if errors.Is(err, sql.ErrNoRows) {
		return TokenOwner{}, notFound("token", "")
	}
	if err != nil {
		return TokenOwner{}, fmt.Errorf("find token: %w", err)
	}
	if hash != "" && subtle.ConstantTimeCompare([]byte(stored), []byte(hash)) != 1 {
		return TokenOwner{}, notFound("token", "")
	}
	o.Kind = TokenKind(kind)
	if used != "" {
		o.LastUsed = parseTime(used)
	}
	if !o.Scoped {
		return o, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT repo_id FROM token_repos WHERE token_id = ? ORDER BY repo_id`, o.ID)
	if err != nil {
		return TokenOwner{}, fmt.Errorf("find token: scope: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return TokenOwner{}, fmt.Errorf("find token: scope: %w", err)
		}
		o.RepoIDs = append(o.RepoIDs, id)
	}
	return o, rows.Err()
}

// TouchToken records that a token was used now, unless it was recorded
// after since already: a token in constant use costs one write a minute,
// not one a request.
func (s *Store) TouchToken(ctx context.Context, id int64, since time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ? AND last_used_at < ?`,
		now(), id, since.UTC().Format(timeFormat))
	if err != nil {
		return fmt.Errorf("token %d: record use: %w", id, err)
	}
	return nil
}
