package replicate

import (
	"errors"
	"testing"
	"time"

	"cpm/internal/remote"
	"cpm/internal/transfer"
)

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempts int
		lo, hi   time.Duration
	}{
		{0, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{1, 3200 * time.Millisecond, 4800 * time.Millisecond},
		{5, 51 * time.Second, 77 * time.Second},
		{8, 4 * time.Minute, 6 * time.Minute},
		{1000, 4 * time.Minute, 6 * time.Minute},
	} {
		for range 50 {
			if d := Backoff(tt.attempts); d < tt.lo || d > tt.hi {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tt.attempts, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestCause(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{transfer.ErrMismatch, "verify"},
		{errors.New("disk"), "local"},
		{&remote.Error{Code: 255, Stderr: "Host key verification failed."}, "blocked"},
		{&remote.Error{Code: 255, Stderr: "Permission denied (publickey)."}, "blocked"},
		{&remote.Error{Code: 255, Stderr: "Connection refused"}, "connect"},
		{&remote.Error{Code: 24}, "partial"},
		{&remote.Error{Code: 23}, "partial"},
		{&remote.Error{Code: 30}, "timeout"},
		{&remote.Error{Code: 12}, "rsync"},
	} {
		if got := cause(tt.err); got != tt.want {
			t.Errorf("cause(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	w := &Workers{down: map[int64]breaker{}, running: map[int64]int{}}
	down := &remote.Error{Code: 255, Stderr: "ssh: connect to host x port 22: Connection refused"}
	w.trip(1, down)
	if b := w.down[1]; b.failures != 1 || !b.until.After(time.Now()) {
		t.Fatalf("breaker after a connection failure: %+v", b)
	}
	w.trip(1, down)
	if b := w.down[1]; b.failures != 2 {
		t.Fatalf("breaker after two failures: %+v", b)
	}
	// A sync that reached the server (even one that failed later) closes it.
	w.trip(1, &remote.Error{Code: 23})
	if _, open := w.down[1]; open {
		t.Fatal("breaker still open after the server answered")
	}
	w.trip(2, down)
	w.trip(2, nil)
	if _, open := w.down[2]; open {
		t.Fatal("breaker still open after a success")
	}
}

// A cluster node whose heartbeat jumps by more than a lease was down (or
// cut off its database) and is back; one that renews every fifth of a
// lease is not, nor is one seen for the first time.
func TestNodeCameBack(t *testing.T) {
	lease := 10 * time.Second
	t0 := time.Now().Add(-time.Hour)
	for _, tt := range []struct {
		name       string
		prev, beat time.Time
		want       bool
	}{
		{"first seen", time.Time{}, t0, false},
		{"still down", t0, t0, false},
		{"renewing", t0, t0.Add(lease / 5), false},
		{"a slow tick", t0, t0.Add(lease), false},
		{"back", t0, t0.Add(lease + time.Second), true},
	} {
		if got := cameBack(tt.prev, tt.beat, lease); got != tt.want {
			t.Errorf("%s: cameBack = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A failing metadata delivery waits a growing while before the next, as a
// failing sync does, instead of retrying at every tick.
func TestMetadataBackoff(t *testing.T) {
	w := &Workers{BackoffMin: time.Second, BackoffMax: time.Minute}
	refused := &remote.Error{Code: 255, Stderr: "Permission denied (publickey)."}
	first := w.metaTrip(1, refused)
	if !w.metaWaits(1) || !first.After(time.Now()) {
		t.Fatal("no backoff after a failed delivery")
	}
	second := w.metaTrip(1, refused)
	if !second.After(first) {
		t.Errorf("backoff did not grow: %v then %v", first, second)
	}
	if w.metaWaits(2) {
		t.Error("another server waits too")
	}
	w.metaTrip(1, nil)
	if w.metaWaits(1) {
		t.Error("still backing off after a delivery went through")
	}
}

// A full disk on a backup is its own cause (metrics and the sync status
// show it), not a generic failure.
func TestDiskFullCause(t *testing.T) {
	e := &transfer.DiskFullError{Free: 10<<20 + 5, Send: 70<<20 + 1, Margin: 64 << 20}
	if cause(e) != "disk_full" {
		t.Errorf("cause %q", cause(e))
	}
}
