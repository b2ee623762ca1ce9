package authcache

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"cpm/internal/store"
)

// clock is a fake clock: t the monotonic reading, t+slept the wall
// clock's (the time spent suspended, which the monotonic clock missed).
type clock struct {
	t     time.Time
	slept time.Duration
}

func (c *clock) now() time.Time  { return c.t }
func (c *clock) wall() time.Time { return c.t.Add(c.slept) }

func confirmed(max int) (*Cache, *clock) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := newCache(max, clk.now, clk.wall)
	c.Confirm(clk.t)
	return c, clk
}

// fill counts its calls and answers v.
func fill(calls *int, v string) func() (string, error) {
	return func() (string, error) { *calls++; return v, nil }
}

func TestFetchHitsAfterAFill(t *testing.T) {
	c, _ := confirmed(10)
	calls := 0
	for range 3 {
		if v, err := Fetch(c, "k", fill(&calls, "a")); v != "a" || err != nil {
			t.Fatalf("Fetch: %q %v", v, err)
		}
	}
	if h, m := c.Counts(); calls != 1 || h != 2 || m != 1 {
		t.Errorf("fills %d, hits %d, misses %d; want 1, 2, 1", calls, h, m)
	}
	// Errors are never kept.
	boom := errors.New("boom")
	for range 2 {
		if _, err := Fetch(c, "e", func() (string, error) { calls++; return "", boom }); err != boom {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Errorf("an error was cached: %d fills", calls)
	}
}

// A change announced while a fill is in flight: the fill's answer may
// predate the change and is dropped, so the next read asks again.
func TestFillRacingAnInvalidationIsDropped(t *testing.T) {
	c, _ := confirmed(10)
	calls := 0
	v, _ := Fetch(c, "k", func() (string, error) {
		calls++
		c.Invalidate() // the notification arrives while the query runs
		return "stale", nil
	})
	if v != "stale" {
		t.Fatalf("the fill's own answer: %q", v)
	}
	if v, _ := Fetch(c, "k", fill(&calls, "fresh")); v != "fresh" || calls != 2 {
		t.Errorf("after a racing invalidation: %q after %d fills, want fresh after 2", v, calls)
	}
	// And a plain invalidation empties it.
	c.Invalidate()
	if Fetch(c, "k", fill(&calls, "newer")); calls != 3 || c.Len() != 1 {
		t.Errorf("after Invalidate: %d fills, %d entries", calls, c.Len())
	}
}

// The cache answers only within store.AuthWindow of the last confirmed
// round trip's start; after it, or once the listener is lost, every read
// goes to the fill and nothing is kept until the next Confirm.
func TestConfirmWindow(t *testing.T) {
	c, clk := confirmed(10)
	calls := 0
	Fetch(c, "k", fill(&calls, "a"))
	clk.t = clk.t.Add(store.AuthWindow - time.Millisecond)
	if Fetch(c, "k", fill(&calls, "a")); calls != 1 || !c.Current() {
		t.Fatalf("inside the window: %d fills", calls)
	}
	clk.t = clk.t.Add(time.Millisecond)
	if c.Current() {
		t.Error("current at the window's end")
	}
	Fetch(c, "k", fill(&calls, "b"))
	Fetch(c, "k", fill(&calls, "b"))
	if calls != 3 {
		t.Errorf("outside the window: %d fills, want 3", calls)
	}
	// Confirmed again: answers again (what it kept before the window
	// closed stays valid: no change was announced).
	c.Confirm(clk.t)
	if v, _ := Fetch(c, "k", fill(&calls, "c")); v != "a" || calls != 3 {
		t.Errorf("confirmed again: %q after %d fills", v, calls)
	}
	// An older round trip's confirmation never moves it back.
	c.Confirm(clk.t.Add(-time.Hour))
	clk.t = clk.t.Add(store.AuthWindow / 2)
	if !c.Current() {
		t.Error("an older Confirm moved the window back")
	}
	c.Lost()
	if c.Current() || c.Len() != 0 {
		t.Errorf("after Lost: current %v, %d entries", c.Current(), c.Len())
	}
	Fetch(c, "k", fill(&calls, "d"))
	if c.Len() != 0 || calls != 4 {
		t.Errorf("a fill while lost was kept: %d entries, %d fills", c.Len(), calls)
	}
	// Never confirmed: never answers.
	fresh := newCache(10, clk.now, clk.wall)
	if fresh.Current() {
		t.Error("a new cache is current")
	}
}

// Full, the cache makes room one entry at a time: filling it past its
// bound loses a few answers, not all of them.
func TestSizeIsBounded(t *testing.T) {
	c, _ := confirmed(100)
	calls := 0
	for i := range 150 {
		Fetch(c, strconv.Itoa(i), fill(&calls, "v")) //nolint:errcheck // fill cannot fail
		if c.Len() > 100 {
			t.Fatalf("%d entries, bound 100", c.Len())
		}
	}
	if c.Len() != 100 {
		t.Errorf("%d entries after 150 fills, bound 100: it was emptied", c.Len())
	}
}

// A flood of unknown keys (anyone may offer them before logging in)
// leaves the known answers alone.
func TestUnknownKeysCannotPushOutKnownOnes(t *testing.T) {
	c, _ := confirmed(maxEntries)
	calls := 0
	Fetch(c, "known", fill(&calls, "alice")) //nolint:errcheck // fill cannot fail
	for i := range maxEntries + 10 {
		FetchSplit(c, strconv.Itoa(i), fill(&calls, ""), func(v string) bool { return v == "" }) //nolint:errcheck // fill cannot fail
	}
	if c.Len() > 1+maxUnknown {
		t.Errorf("%d entries after the flood; want at most %d", c.Len(), 1+maxUnknown)
	}
	before := calls
	if v, _ := Fetch(c, "known", fill(&calls, "alice")); v != "alice" || calls != before {
		t.Error("the known answer was pushed out by unknown keys")
	}
}

func TestNilCacheCachesNothing(t *testing.T) {
	var c *Cache
	calls := 0
	Fetch(c, "k", fill(&calls, "a"))
	Fetch(c, "k", fill(&calls, "a"))
	if calls != 2 || c.Current() {
		t.Errorf("nil cache: %d fills", calls)
	}
}

// An answer older than maxAge is asked again, however current the
// listener keeps the cache: a change no trigger announced ends there.
func TestAnswersExpire(t *testing.T) {
	c, clk := confirmed(10)
	calls := 0
	Fetch(c, "k", fill(&calls, "a")) //nolint:errcheck // fill cannot fail
	for _, step := range []time.Duration{maxAge / 2, maxAge / 2} {
		clk.t = clk.t.Add(step)
		c.Confirm(clk.t)                 // the listener keeps proving itself current
		Fetch(c, "k", fill(&calls, "a")) //nolint:errcheck // fill cannot fail
	}
	if calls != 2 {
		t.Errorf("%d fills over %v; want 2 (one at the start, one when it expired)", calls, maxAge)
	}
}

// A machine suspended with the cache current wakes up with the cache
// not current and its answers gone stale, though the monotonic clock
// stood still while it slept.
func TestSuspendEndsTheWindow(t *testing.T) {
	c, clk := confirmed(10)
	calls := 0
	Fetch(c, "k", fill(&calls, "a")) //nolint:errcheck // fill cannot fail
	clk.slept = store.AuthWindow
	if c.Current() {
		t.Error("current after sleeping through the window")
	}
	c.Confirm(clk.t.Add(time.Millisecond)) // a round trip after waking, on the monotonic clock
	clk.slept = maxAge
	Fetch(c, "k", fill(&calls, "a")) //nolint:errcheck // fill cannot fail
	if calls != 2 {
		t.Errorf("%d fills; an answer from before the sleep was served", calls)
	}
}
