package access

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cpm/internal/authcache"
	"cpm/internal/store"
)

// WithCache returns the Checker answering its hot reads (a key's owner,
// a repository's facts) through cache, which the caller keeps current
// (authcache.Listen). Only for a long-lived serving process on a store
// that is AuthCacheable.
func (c Checker) WithCache(cache *authcache.Cache) Checker {
	c.cache = cache
	return c
}

// Uncached returns the Checker reading the database every time: for a
// decision right after a change this session made (a push that created
// its repository), which the cache may not have heard of yet.
func (c Checker) Uncached() Checker {
	c.cache = nil
	return c
}

// ownerAnswer is a key lookup's answer, kept for unknown keys too.
type ownerAnswer struct {
	owner store.KeyOwner
	found bool
}

// keyOwner is store.KeyOwnerByFingerprint through the cache.
func (c Checker) keyOwner(ctx context.Context, fp string) (store.KeyOwner, error) {
	// Anyone may offer keys before authenticating: the unknown ones are
	// kept apart, in a small store of their own.
	a, err := authcache.FetchSplit(c.cache, "key\x00"+fp, func() (ownerAnswer, error) {
		o, err := store.CachedReads(c.store).KeyOwnerByFingerprint(ctx, fp)
		if errors.Is(err, store.ErrNotFound) {
			return ownerAnswer{}, nil
		}
		return ownerAnswer{owner: o, found: err == nil}, err
	}, func(a ownerAnswer) bool { return !a.found })
	if err != nil {
		return store.KeyOwner{}, err
	}
	if !a.found {
		return store.KeyOwner{}, fmt.Errorf("key %s: %w", fp, store.ErrNotFound)
	}
	return a.owner, nil
}

// repoFacts is store.RepoFacts through the cache.
func (c Checker) repoFacts(ctx context.Context, userID int64, org, repo string) (store.RepoFacts, error) {
	key := "facts\x00" + strconv.FormatInt(userID, 10) + "\x00" + org + "\x00" + repo
	return authcache.Fetch(c.cache, key, func() (store.RepoFacts, error) {
		return store.CachedReads(c.store).RepoFacts(ctx, userID, org, repo)
	})
}
