package sshserver

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
)

// Startups bounds connections that have not authenticated yet, as
// OpenSSH's MaxStartups start:rate:full and PerSourceMaxStartups do.
// Below Start every connection is taken; from Start on a new one is
// dropped with probability Rate percent, rising linearly to 100 at Full;
// at Full every new one is dropped. A dropped connection is closed at
// once: holding it would only tie up a socket and tell a flood nothing.
type Startups struct {
	Start, Rate, Full int
	// PerSource caps the unauthenticated connections of one source (an
	// IPv4 address, or an IPv6 /64: one host is given a whole /64), so
	// that one address cannot take the slots of everyone else. 0 is no cap.
	PerSource int
}

// dropReason says why a new connection is dropped when open connections
// are unauthenticated, fromSource of them from its source, or "" when it
// is taken. roll is uniform in [0, 100).
func (p Startups) dropReason(open, fromSource, roll int) string {
	switch {
	case p.PerSource > 0 && fromSource >= p.PerSource:
		return "per-source limit"
	case open >= p.Full:
		return "full"
	case open < p.Start:
		return ""
	}
	// Start <= open < Full, so Full > Start here.
	if roll < p.Rate+(100-p.Rate)*(open-p.Start)/(p.Full-p.Start) {
		return "random early drop"
	}
	return ""
}

// startupGate counts the unauthenticated connections, in all and per
// source, and decides on each new one.
type startupGate struct {
	policy Startups
	roll   func() int // uniform in [0, 100)

	mu       sync.Mutex
	open     int
	bySource map[string]int
}

func newStartupGate(p Startups) *startupGate {
	return &startupGate{policy: p, roll: func() int { return rand.IntN(100) }, bySource: map[string]int{}}
}

// enter takes a connection from addr, returning the function that frees
// its slot (call it once), or says why it is dropped.
func (g *startupGate) enter(addr net.Addr) (leave func(), reason string) {
	src := sourceOf(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if reason := g.policy.dropReason(g.open, g.bySource[src], g.roll()); reason != "" {
		return nil, reason
	}
	g.open++
	g.bySource[src]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.open--
		if g.bySource[src]--; g.bySource[src] <= 0 {
			delete(g.bySource, src)
		}
	}, ""
}

// sourceOf is the unit the per-source cap counts: the IPv4 address, or
// the IPv6 /64.
func sourceOf(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String()
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
