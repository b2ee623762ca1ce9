package testworld

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// DBLink is one node's road to PostgreSQL: a TCP forwarder on a loopback
// address of the test's, which the node's database URL names instead of
// the server. Cut closes every connection through it and refuses new ones
// (the node's side sees its connections reset), Restore lets them through
// again: a network cut between that node and the database, the server
// itself untouched.
type DBLink struct {
	ln     net.Listener
	target string // the PostgreSQL server's HOST:PORT

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartDBLink listens on host (a loopback address) at a free port and
// forwards to target; it stops at the test's cleanup.
func StartDBLink(t testing.TB, host, target string) *DBLink {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("testworld: database link: %v", err)
	}
	l := &DBLink{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(l.Close)
	return l
}

// Addr is where the link listens.
func (l *DBLink) Addr() string { return l.ln.Addr().String() }

// Via rewrites a postgres:// URL to reach its server through the link.
func (l *DBLink) Via(database string) (string, error) {
	u, err := url.Parse(database)
	if err != nil {
		return "", fmt.Errorf("testworld: database URL: %w", err)
	}
	u.Host = l.Addr()
	return u.String(), nil
}

// Cut closes every connection through the link and refuses new ones
// until Restore.
func (l *DBLink) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		reset(c)
	}
}

// Restore lets connections through again.
func (l *DBLink) Restore() {
	l.mu.Lock()
	l.cut = false
	l.mu.Unlock()
}

// Close stops the link and every connection through it.
func (l *DBLink) Close() {
	l.ln.Close()
	l.Cut()
	l.wg.Wait()
}

func (l *DBLink) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go l.forward(c)
	}
}

// forward carries one connection to the server, or resets it at once
// while the link is cut.
func (l *DBLink) forward(c net.Conn) {
	defer l.wg.Done()
	if !l.track(c) {
		reset(c)
		return
	}
	defer l.untrack(c)
	s, err := net.Dial("tcp", l.target)
	if err != nil {
		reset(c)
		return
	}
	if !l.track(s) {
		reset(c)
		reset(s)
		return
	}
	defer l.untrack(s)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Either side ending ends both: a half-open link is no cut.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	<-done
}

// track registers c unless the link is cut.
func (l *DBLink) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *DBLink) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// reset closes c with a TCP reset rather than an orderly end, as a
// broken network path shows itself to the peer that still writes.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
