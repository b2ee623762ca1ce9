// Package authlimit slows down guessing: it limits the failed
// authentications (a bad token, a bad password) each source address may
// make, with a token bucket per address. Successful authentications cost
// nothing, so a user behind the same NAT as a guesser is held up only
// while the guesser is.
//
// Memory is bounded: at most MaxAddrs addresses are remembered, the least
// recently failed one forgotten first. IPv6 addresses count per /64, the
// block one subscriber usually holds, so that a guesser cannot get a
// fresh bucket for each of its 2^64 addresses.
package authlimit

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Config sets the limits. Zero fields take the defaults.
type Config struct {
	// Burst is how many failures an address may make in a row (10).
	Burst int
	// Every is how long it takes to earn one failure back (6s: ten a
	// minute once the burst is spent).
	Every time.Duration
	// MaxAddrs is how many addresses are remembered at most (65536).
	MaxAddrs int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Counters receives the limiter's events, for metrics
// (metrics.Auth). Nil: none.
type Counters interface {
	Failed(transport string)
	Limited(transport string)
}

// Limiter is safe for concurrent use.
type Limiter struct {
	cfg       Config
	transport string
	counters  Counters

	mu    sync.Mutex
	addrs map[string]*list.Element // of *bucket
	lru   list.List                // front: most recently failed
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// New returns a limiter for one transport ("http", …), which names it in
// the counters.
func New(transport string, cfg Config, c Counters) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Every <= 0 {
		cfg.Every = 6 * time.Second
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = 65536
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, transport: transport, counters: c, addrs: map[string]*list.Element{}}
}

// Allow reports whether addr ("IP" or "IP:PORT") may try to
// authenticate now: false once it spent its failures, until it earns one
// back.
func (l *Limiter) Allow(addr string) bool {
	key := Key(addr)
	l.mu.Lock()
	e, ok := l.addrs[key]
	allow := true
	if ok {
		b := e.Value.(*bucket)
		l.refill(b)
		switch {
		case b.tokens >= float64(l.cfg.Burst):
			// Back to a full bucket: the same as never seen.
			l.lru.Remove(e)
			delete(l.addrs, key)
		case b.tokens < 1:
			allow = false
		}
	}
	l.mu.Unlock()
	if !allow && l.counters != nil {
		l.counters.Limited(l.transport)
	}
	return allow
}

// Failed records one failed authentication from addr.
func (l *Limiter) Failed(addr string) {
	key := Key(addr)
	l.mu.Lock()
	e, ok := l.addrs[key]
	if !ok {
		if l.lru.Len() >= l.cfg.MaxAddrs {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.addrs, old.Value.(*bucket).key)
		}
		e = l.lru.PushFront(&bucket{key: key, tokens: float64(l.cfg.Burst), at: l.cfg.Now()})
		l.addrs[key] = e
	}
	b := e.Value.(*bucket)
	l.refill(b)
	b.tokens = max(0, b.tokens-1)
	l.lru.MoveToFront(e)
	l.mu.Unlock()
	if l.counters != nil {
		l.counters.Failed(l.transport)
	}
}

// Len is how many addresses are remembered now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func (l *Limiter) refill(b *bucket) {
	now := l.cfg.Now()
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.cfg.Burst), b.tokens+float64(d)/float64(l.cfg.Every))
	}
	b.at = now
}

// maxKey bounds what an unparsable address can make the limiter hold.
const maxKey = 64

// Key is the bucket an address counts against: the IP without a port,
// an IPv6 address's /64, an IPv4-mapped IPv6 address as IPv4; anything
// unparsable as itself, cut short.
func Key(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if len(host) > maxKey {
			host = host[:maxKey]
		}
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
