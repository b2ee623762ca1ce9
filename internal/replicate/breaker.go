package replicate

import (
	"errors"
	"math/rand/v2"
	"time"

	"cpm/internal/remote"
	"cpm/internal/transfer"
)

// breaker is a target's circuit breaker: after connection failures, it
// stays open (nothing is tried) until a probe time that backs off.
type breaker struct {
	failures int
	until    time.Time
}

// cameBack reports whether a node's heartbeat, last seen at prev, moved
// on by more than a lease at once: the node was down or cut off its
// database (it renews every fifth of a lease while up) and is back, so
// its syncs should not wait out a backoff grown while it was away.
func cameBack(prev, beat time.Time, lease time.Duration) bool {
	return !prev.IsZero() && beat.Sub(prev) > lease
}

// Backoff is the delay before attempt n+1 with the default range: about
// 2s doubling to 5 min.
func Backoff(attempts int) time.Duration { return BackoffRange(attempts, 2*time.Second, 5*time.Minute) }

// BackoffRange is the delay before attempt n+1: lo doubling up to hi,
// with ±20% jitter so that many jobs do not retry in step.
func BackoffRange(attempts int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (w *Workers) backoff(attempts int) time.Duration {
	lo, hi := w.BackoffMin, w.BackoffMax
	if lo <= 0 {
		lo = 2 * time.Second
	}
	if hi < lo {
		hi = max(lo, 5*time.Minute)
	}
	return BackoffRange(attempts, lo, hi)
}

func (w *Workers) isDown(server int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down[server].until.After(time.Now())
}

// trip updates the target's circuit breaker after an attempt: connection
// failures open it for a growing while; anything else (a sync that ran)
// closes it.
func (w *Workers) trip(server int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil || (cause(err) != "connect" && cause(err) != "timeout") {
		delete(w.down, server)
		return
	}
	b := w.down[server]
	b.failures++
	b.until = time.Now().Add(w.backoff(b.failures - 1))
	w.down[server] = b
}

// metaWaits reports whether the target's metadata delivery is backing off.
func (w *Workers) metaWaits(server int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.metaDown[server].until.After(time.Now())
}

// metaTrip records a metadata delivery: a failure makes the next one wait
// longer each time (the sync backoff), a success clears that. It returns
// when the next attempt may run.
func (w *Workers) metaTrip(server int64, err error) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.metaDown, server)
		return time.Now()
	}
	if w.metaDown == nil {
		w.metaDown = map[int64]breaker{}
	}
	b := w.metaDown[server]
	b.failures++
	b.until = time.Now().Add(w.backoff(b.failures - 1))
	w.metaDown[server] = b
	return b.until
}

// cause names a failure for metrics, following rsync's exit codes.
func cause(err error) string {
	var re *remote.Error
	var full *transfer.DiskFullError
	switch {
	case errors.Is(err, transfer.ErrMismatch):
		return "verify"
	case errors.As(err, &full):
		return "disk_full"
	case !errors.As(err, &re):
		return "local"
	case re.Blocking():
		return "blocked"
	case re.Code == 23 || re.Code == 24:
		return "partial"
	case re.Code == 30 || re.Code == 35:
		return "timeout"
	case re.Code == 255:
		return "connect"
	}
	return "rsync"
}

// ResetBreakers closes every target's circuit breaker.
func (w *Workers) ResetBreakers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = map[int64]breaker{}
	w.metaDown = map[int64]breaker{}
}
