// Package authcache keeps a serving node's answers to the questions it
// asks the store on every connection (who does this key speak for, what
// are this repository's facts for this user) when the store is
// PostgreSQL, where each costs a round trip. The guarantee: once
// store.WaitAuthApplied has returned after a change, no answer that
// predates it is served; without a waiter, none is served later than
// store.AuthWindow after a change the listener did not hear, and none is
// kept longer than maxAge. The database's triggers announce every change
// (store.ListenAuth), the listener empties the cache on each, and the
// cache answers only while the listen connection is proven current (a
// round trip that started less than store.AuthWindow ago by the
// monotonic and the wall clock); otherwise every read goes to the
// database.
package authcache

import (
	"sync"
	"sync/atomic"
	"time"

	"cpm/internal/store"
)

// maxEntries bounds the cache: when full, one entry chosen at random
// makes room (an attacker filling it pushes out only a share of the
// others' answers, never all at once).
const maxEntries = 100000

// maxUnknown bounds the answers "no such key" apart: anyone may offer
// random keys before authenticating, and those must not push out the
// known ones.
const maxUnknown = 1000

// maxAge bounds how long an answer is kept however current the listen
// connection looks: a backstop for a change that reached the database
// by a path no trigger saw (a superuser disabling them, say).
const maxAge = 30 * time.Second

// entry is a cached answer and when (the cache's clock) it was filled.
type entry struct {
	v  any
	at time.Time
}

// Cache holds answers keyed by a string. The zero Cache is not usable;
// a nil *Cache caches nothing.
type Cache struct {
	mu      sync.Mutex
	gen     uint64 // moves on every invalidation: a fill that began before one is dropped
	entries map[string]entry
	unknown map[string]entry // answers FetchSplit was told are small
	max     int
	// confirmed is the local monotonic time at which the last successful
	// round trip on the listen connection started; zero: not current.
	confirmed time.Time
	// now reads the monotonic clock (time.Now), wall the wall clock only:
	// the monotonic one stops while the machine is suspended, and a cache
	// that slept through changes must not wake up current.
	now, wall func() time.Time

	hits, misses atomic.Uint64
}

// New returns an empty cache that is not current until Confirm.
func New() *Cache {
	return newCache(maxEntries, time.Now, func() time.Time { return time.Now().Round(0) })
}

func newCache(max int, now, wall func() time.Time) *Cache {
	return &Cache{entries: map[string]entry{}, unknown: map[string]entry{}, max: max, now: now, wall: wall}
}

// since is the time elapsed since t by the monotonic clock or by the
// wall clock, whichever is longer.
func (c *Cache) since(t time.Time) time.Duration {
	return max(c.now().Sub(t), c.wall().Sub(t.Round(0)))
}

// currentLocked reports whether the listen connection was proven
// current within the window.
func (c *Cache) currentLocked() bool {
	return !c.confirmed.IsZero() && c.since(c.confirmed) < store.AuthWindow
}

// Current reports whether the cache may answer now.
func (c *Cache) Current() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.currentLocked()
}

// Invalidate empties the cache and makes every fill in flight void.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidateLocked()
}

func (c *Cache) invalidateLocked() {
	c.gen++
	clear(c.entries)
	clear(c.unknown)
}

// Confirm records that a round trip started at start proved the listen
// connection current (every change committed before start has been
// applied).
func (c *Cache) Confirm(start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if start.After(c.confirmed) {
		c.confirmed = start
	}
}

// Lost empties the cache and stops it answering until the next Confirm:
// the listen connection is gone, changes may go unseen.
func (c *Cache) Lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidateLocked()
	c.confirmed = time.Time{}
}

// begin returns the cached value of key when the cache is current, else
// the generation a fill must still find to store its answer.
func (c *Cache) begin(key string) (v any, hit bool, gen uint64, current bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.currentLocked() {
		return nil, false, 0, false
	}
	for _, m := range []map[string]entry{c.entries, c.unknown} {
		if e, hit := m[key]; hit {
			if c.since(e.at) >= maxAge {
				delete(m, key)
				break
			}
			return e.v, true, c.gen, true
		}
	}
	return nil, false, c.gen, true
}

// put stores a fill's answer unless an invalidation came since it began
// (the answer may predate the change) or the cache stopped being current.
func (c *Cache) put(key string, v any, gen uint64, unknown bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.currentLocked() {
		return
	}
	m, max := c.entries, c.max
	if unknown {
		m, max = c.unknown, min(c.max, maxUnknown)
	}
	if _, ok := m[key]; !ok && len(m) >= max {
		for k := range m { // map order is randomised: a random victim
			delete(m, k)
			break
		}
	}
	m[key] = entry{v: v, at: c.now()}
}

// Len is the number of cached answers.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries) + len(c.unknown)
}

// Counts returns the hits and misses so far (for metrics).
func (c *Cache) Counts() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

// Fetch answers key from c when it is current and holds it, else calls
// fill and keeps its answer if it may (errors are never kept). A nil c
// always calls fill.
func Fetch[V any](c *Cache, key string, fill func() (V, error)) (V, error) {
	return FetchSplit(c, key, fill, func(V) bool { return false })
}

// FetchSplit is Fetch keeping the answers unknown reports true for (a
// key nobody has) in their own small store, so that a flood of them
// cannot push out the others.
func FetchSplit[V any](c *Cache, key string, fill func() (V, error), unknown func(V) bool) (V, error) {
	if c == nil {
		return fill()
	}
	v, hit, gen, current := c.begin(key)
	if hit {
		if tv, ok := v.(V); ok {
			c.hits.Add(1)
			return tv, nil
		}
	}
	c.misses.Add(1)
	got, err := fill()
	if err == nil && current {
		c.put(key, got, gen, unknown(got))
	}
	return got, err
}
