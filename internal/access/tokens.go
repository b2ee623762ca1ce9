package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/store"
	"cpm/internal/token"
)

// TokenInfo names the access token that authenticated an identity, with
// its limits: RepoIDs (when Scoped) are the only repositories it reaches
// within its user's rights, and ReadOnly keeps it from writing.
type TokenInfo struct {
	ID       int64
	Name     string
	RepoIDs  []int64
	Scoped   bool // RepoIDs limit the token; empty and Scoped: nothing
	ReadOnly bool
	Kind     store.TokenKind
}

// ErrUnknownToken means the token is not one this node knows: never
// made, revoked or expired, which are told apart nowhere, so that a
// guesser learns nothing.
var ErrUnknownToken = errors.New("unknown token")

// touchEvery is how often a token's last use is written at most.
const touchEvery = time.Minute

// IdentifyToken finds whom an access token secret speaks for: its user
// (as that user's key would, with Token set), or for a deploy token a
// deploy-key-like identity of its repository (CanWrite unless read-only).
func (c Checker) IdentifyToken(ctx context.Context, secret string) (Identity, error) {
	if !token.WellFormed(secret) {
		return Identity{}, ErrUnknownToken
	}
	o, err := c.store.TokenOwnerByHash(ctx, token.Hash(secret))
	return c.tokenIdentity(ctx, o, err)
}

// IdentifyTokenID is IdentifyToken by the token's id, for a process that
// the one that checked the secret told the id (cpm-hook, from the
// gateway's environment): a token revoked meanwhile is ErrUnknownToken.
func (c Checker) IdentifyTokenID(ctx context.Context, id int64) (Identity, error) {
	o, err := c.store.TokenOwnerByID(ctx, id)
	if err != nil {
		return c.tokenIdentity(ctx, o, err)
	}
	// Not a use of the token: its last use was recorded by the session.
	o.LastUsed = time.Now()
	return c.tokenIdentity(ctx, o, nil)
}

func (c Checker) tokenIdentity(ctx context.Context, o store.TokenOwner, err error) (Identity, error) {
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnknownToken
	}
	if err != nil {
		return Identity{}, fmt.Errorf("identify token: %w", err)
	}
	if time.Since(o.LastUsed) >= touchEvery && c.touched.due(o.ID, time.Now()) {
		c.touch(ctx, o.ID)
	}
	info := &TokenInfo{ID: o.ID, Name: o.Name, RepoIDs: o.RepoIDs, Scoped: o.Scoped, ReadOnly: o.ReadOnly, Kind: o.Kind}
	if o.RepoID != 0 && o.KeyID != 0 {
		// A deploy key's git-lfs-authenticate token is that key, with
		// its write as the key has it now (downgraded: no more writes).
		return Identity{KeyOwner: store.KeyOwner{KeyID: o.KeyID, RepoID: o.RepoID, CanWrite: !o.ReadOnly && o.KeyCanWrite}, Token: info}, nil
	}
	if o.RepoID != 0 {
		return Identity{KeyOwner: store.KeyOwner{RepoID: o.RepoID, CanWrite: !o.ReadOnly}, Token: info}, nil
	}
	return Identity{KeyOwner: store.KeyOwner{UserID: o.UserID, User: o.User, SiteAdmin: o.SiteAdmin}, Token: info}, nil
}

// touch records the token's use in the background: the request it
// authenticates does not wait for a write, nor fails for one.
func (c Checker) touch(ctx context.Context, id int64) {
	log := zerolog.Ctx(ctx)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	go func() {
		defer cancel()
		if err := c.store.TouchToken(ctx, id, time.Now().Add(-touchEvery)); err != nil {
			log.Warn().Err(err).Int64("token", id).Msg("token last use")
		}
	}()
}

// touches remembers when this process last recorded each token's use,
// so that a burst of requests with one token (a hundred clones at once)
// makes one write, not one each before the first lands.
type touches struct {
	mu sync.Mutex
	at map[int64]time.Time
}

// maxTouches bounds the memory: past it, the memory starts over (a few
// writes too many, never a use unrecorded).
const maxTouches = 10000

// due reports whether the use of token id at now should be written, and
// if so remembers it. A nil touches (a zero Checker) always says yes.
func (t *touches) due(id int64, now time.Time) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.at[id]; ok && now.Sub(last) < touchEvery {
		return false
	}
	if len(t.at) >= maxTouches {
		clear(t.at)
	}
	t.at[id] = now
	return true
}

// inScope reports whether a token's scope reaches the repository.
func (t *TokenInfo) inScope(f store.RepoFacts) bool {
	return f.RepoExists && slices.Contains(t.RepoIDs, f.RepoID)
}
