package authlimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1e9, 0)} }

type counts struct{ failed, limited int }

func (c *counts) Failed(transport string)  { c.failed++ }
func (c *counts) Limited(transport string) { c.limited++ }

func TestBurstThenRefill(t *testing.T) {
	c, n := newClock(), &counts{}
	l := New("http", Config{Burst: 3, Every: 10 * time.Second, Now: c.now}, n)
	for i := range 3 {
		if !l.Allow("192.0.2.1:5000") {
			t.Fatalf("refused before failure %d", i+1)
		}
		l.Failed("192.0.2.1:5000")
	}
	// Another port of the same address is the same client.
	if l.Allow("192.0.2.1:6000") {
		t.Fatal("allowed after the burst")
	}
	if !l.Allow("192.0.2.2:6000") {
		t.Fatal("another address refused")
	}
	c.advance(9 * time.Second)
	if l.Allow("192.0.2.1") {
		t.Fatal("allowed before one failure was earned back")
	}
	c.advance(time.Second)
	if !l.Allow("192.0.2.1") {
		t.Fatal("refused after one failure was earned back")
	}
	l.Failed("192.0.2.1")
	if l.Allow("192.0.2.1") {
		t.Fatal("allowed with no failure left")
	}
	// A full bucket again is forgotten.
	c.advance(time.Hour)
	if !l.Allow("192.0.2.1") || l.Len() != 0 {
		t.Fatalf("after an hour: %d remembered", l.Len())
	}
	if n.failed != 4 || n.limited != 3 {
		t.Errorf("counted %+v", *n)
	}
}

// TestBoundedMemory: a flood of addresses never makes the limiter hold
// more than MaxAddrs, and the address failing now is the one remembered.
func TestBoundedMemory(t *testing.T) {
	c := newClock()
	l := New("http", Config{Burst: 2, Every: time.Minute, MaxAddrs: 100, Now: c.now}, nil)
	l.Failed("198.51.100.7")
	l.Failed("198.51.100.7")
	for i := range 100_000 {
		l.Failed(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255))
		if i%50 == 0 {
			// The guesser keeps failing: it stays among the remembered.
			l.Failed("198.51.100.7")
		}
		if l.Len() > 100 {
			t.Fatalf("%d addresses remembered", l.Len())
		}
	}
	if l.Allow("198.51.100.7") {
		t.Error("a guesser that kept failing was forgotten")
	}
}

// TestIPv6CountsPer64: the addresses of one /64 share a bucket.
func TestIPv6CountsPer64(t *testing.T) {
	l := New("http", Config{Burst: 2, Every: time.Hour}, nil)
	l.Failed("[2001:db8:1:2::1]:443")
	l.Failed("[2001:db8:1:2:ffff::9]:443")
	if l.Allow("2001:db8:1:2::77") {
		t.Error("another address of the same /64 allowed")
	}
	if !l.Allow("2001:db8:1:3::1") {
		t.Error("another /64 refused")
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:22":          "192.0.2.1",
		"192.0.2.1":             "192.0.2.1",
		"[::ffff:192.0.2.1]:80": "192.0.2.1",
		"[fe80::1%eth0]:80":     "fe80::/64",
		"2001:db8::1":           "2001:db8::/64",
		"@":                     "@",
		"":                      "",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
	long := string(make([]byte, 1000))
	if len(Key(long)) > maxKey {
		t.Error("an unparsable address kept whole")
	}
}

func TestConcurrent(t *testing.T) {
	l := New("http", Config{Burst: 5, MaxAddrs: 50}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a := fmt.Sprintf("10.0.%d.%d", g, i%200)
				if l.Allow(a) {
					l.Failed(a)
				}
			}
		}()
	}
	wg.Wait()
	if l.Len() > 50 {
		t.Errorf("%d remembered", l.Len())
	}
}
