package httpserver

import (
	"net"
	"net/netip"
	"sync"
)

// ConnLimits bound the HTTP listener's open connections: Total in all,
// PerSource from one IPv4 address or IPv6 /64 (0: no cap), except from
// the sources Exempt says carry many clients (proxies and balancers in
// proxy_allow). A connection past a cap is closed at once, as the ssh
// listener's max_startups drops one.
type ConnLimits struct {
	Total, PerSource int
	Exempt           func(netip.Addr) bool
}

// LimitConns wraps ln (the raw TCP listener, below any PROXY header:
// reading one must not hold the accept loop) with l's caps.
func LimitConns(ln net.Listener, l ConnLimits) net.Listener {
	if l.Total <= 0 && l.PerSource <= 0 {
		return ln
	}
	return &connLimiter{Listener: ln, l: l, bySource: map[netip.Prefix]int{}}
}

type connLimiter struct {
	net.Listener
	l        ConnLimits
	mu       sync.Mutex
	open     int
	bySource map[netip.Prefix]int
}

func (c *connLimiter) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if leave, ok := c.enter(conn.RemoteAddr()); ok {
			return &limitedConn{Conn: conn, leave: leave}, nil
		}
		conn.Close()
	}
}

// enter takes a slot for a connection from addr, or says there is none.
func (c *connLimiter) enter(addr net.Addr) (func(), bool) {
	src, counted := c.source(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l.Total > 0 && c.open >= c.l.Total || counted && c.l.PerSource > 0 && c.bySource[src] >= c.l.PerSource {
		return nil, false
	}
	c.open++
	if counted {
		c.bySource[src]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.open--
			if counted {
				if c.bySource[src]--; c.bySource[src] <= 0 {
					delete(c.bySource, src)
				}
			}
		})
	}, true
}

// source is what the per-source cap counts (the IPv4 address or the
// IPv6 /64), and whether it counts addr at all.
func (c *connLimiter) source(addr net.Addr) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}, false
	}
	a := ap.Addr().Unmap()
	if c.l.Exempt != nil && c.l.Exempt(a) {
		return netip.Prefix{}, false
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p, true
}

type limitedConn struct {
	net.Conn
	leave func()
}

func (l *limitedConn) Close() error {
	l.leave()
	return l.Conn.Close()
}
