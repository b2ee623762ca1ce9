package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LFSMintsPerMinute bounds the tokens of kind lfs one ssh key (a user's
// or a deploy key) is handed in a minute. It is kept in the database so
// that it holds whatever process serves the session (an OpenSSH forced
// command runs one per session) and across a cluster's nodes.
const LFSMintsPerMinute = 60

// ErrTooManyTokens: the key was handed LFSMintsPerMinute tokens of kind
// lfs in the last minute.
var ErrTooManyTokens = errors.New("too many tokens asked for; try again in a minute")

// lfsMintRoom clears the expired lfs tokens of t's key (so that the
// table stays small) and refuses t when the key had its minute's share.
// Both are probes of the key's index; a token made without a key is
// counted against its user.
func lfsMintRoom(ctx context.Context, tx *Tx, t NewToken) error {
	col, id := "key_id", t.KeyID
	if id == 0 {
		col, id = "user_id", t.UserID
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE `+col+` = ? AND kind = 'lfs' AND expires_at < ?`, id, now()); err != nil {
		return fmt.Errorf("clear expired tokens: %w", err)
	}
	since := time.Now().Add(-time.Minute).UTC().Format(timeFormat)
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE `+col+` = ? AND kind = 'lfs' AND created_at >= ?`, id, since).Scan(&n); err != nil {
		return fmt.Errorf("count recent tokens: %w", err)
	}
	if n >= LFSMintsPerMinute {
		return fmt.Errorf("create token %q: %w", t.Name, ErrTooManyTokens)
	}
	return nil
}
