package node

import (
	"math/rand/v2"
	"time"

	"cpm/internal/store"
)

// A move that failed (most often: pushes kept the gate past gateWait)
// waits before it is tried again, longer after each failure, so that the
// writers it held back get their turn: retaking the turnstile at the
// next tick would win against sessions that poll for it, and a move that
// cannot finish would starve every push to its repository.
const (
	moveRetryMin = 5 * time.Second
	moveRetryMax = 5 * time.Minute
)

// moveRetries is the retry state of the moves this node failed to
// perform, by repository and target; only the handover loop uses it.
type moveRetries map[moveKey]*moveState

type moveKey struct {
	repo int64
	to   string
}

type moveState struct {
	attempts int
	next     time.Time // not tried again before
	last     string    // the last failure
}

// due reports whether m may be tried at now.
func (r moveRetries) due(m store.Move, now time.Time) bool {
	s, ok := r[moveKey{m.RepoID, m.To.Name}]
	return !ok || !now.Before(s.next)
}

// failed records a failed attempt at m at now and returns its state.
func (r moveRetries) failed(m store.Move, now time.Time, err error) moveState {
	k := moveKey{m.RepoID, m.To.Name}
	s := r[k]
	if s == nil {
		s = &moveState{}
		r[k] = s
	}
	s.attempts++
	s.last = err.Error()
	s.next = now.Add(moveRetryDelay(s.attempts))
	return *s
}

// keepOnly forgets the moves no longer asked of this node (done,
// cancelled, or asked again with another target).
func (r moveRetries) keepOnly(moves []store.Move) {
	pending := make(map[moveKey]bool, len(moves))
	for _, m := range moves {
		pending[moveKey{m.RepoID, m.To.Name}] = true
	}
	for k := range r {
		if !pending[k] {
			delete(r, k)
		}
	}
}

// moveRetryDelay is the wait after the n-th failed attempt: from
// moveRetryMin doubling up to moveRetryMax, each spread by ±20% so that
// the moves of a drain do not all come back at once.
func moveRetryDelay(n int) time.Duration {
	d := moveRetryMax
	if n < 10 {
		d = min(moveRetryMin<<(n-1), moveRetryMax)
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
