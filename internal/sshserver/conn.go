package sshserver

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/gitservice"
	"cpm/internal/sshkey"
)

// deadlineConn enforces the handshake deadline, the idle timeout and the
// maximum connection time, and frees the connection's unauthenticated
// slot once it is authenticated or closed. It owns the socket's deadline:
// gliderlabs clears it before every read and write, and those calls are
// ignored.
//
// A clone of a large repository is tens of thousands of reads and writes;
// moving the runtime's deadline timer on each of them showed up in the
// server's CPU profile. The deadline moves at most once per step, so the
// idle timeout fires between idle-step and idle after the last byte.
type deadlineConn struct {
	net.Conn
	idle      time.Duration
	step      time.Duration
	handshake time.Time
	max       time.Time
	moved     atomic.Int64 // when the deadline last moved, Unix nanoseconds
	authed    atomic.Bool
	release   sync.Once
	free      func()
}

// maxDeadlineStep bounds how stale the idle deadline may get.
const maxDeadlineStep = time.Second

func newDeadlineConn(c net.Conn, l Limits, free func()) *deadlineConn {
	now := time.Now()
	dc := &deadlineConn{Conn: c, idle: l.IdleTimeout, step: min(maxDeadlineStep, l.IdleTimeout/10),
		handshake: now.Add(l.HandshakeTimeout), max: now.Add(l.MaxSessionTime), free: free}
	dc.move(now)
	return dc
}

func (c *deadlineConn) touch() {
	now := time.Now()
	if time.Duration(now.UnixNano()-c.moved.Load()) >= c.step {
		c.move(now)
	}
}

func (c *deadlineConn) move(now time.Time) {
	c.moved.Store(now.UnixNano())
	d := now.Add(c.idle)
	if !c.authed.Load() && c.handshake.Before(d) {
		d = c.handshake
	}
	if c.max.Before(d) {
		d = c.max
	}
	c.Conn.SetDeadline(d)
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.touch()
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.touch()
	return c.Conn.Write(p)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline are no-ops: the
// deadline is deadlineConn's own.
func (c *deadlineConn) SetDeadline(time.Time) error      { return nil }
func (c *deadlineConn) SetReadDeadline(time.Time) error  { return nil }
func (c *deadlineConn) SetWriteDeadline(time.Time) error { return nil }

// authenticated marks the end of the handshake.
func (c *deadlineConn) authenticated() {
	c.authed.Store(true)
	c.move(time.Now()) // from the handshake deadline to the idle one
	c.release.Do(c.free)
}

func (c *deadlineConn) Close() error {
	c.release.Do(c.free)
	return c.Conn.Close()
}

// maxRequests bounds the channel requests one session may send; a client
// flooding env or window-change requests is cut off.
const maxRequests = 64

// filteredChannel answers, itself, every session request cpm does not
// serve, so gliderlabs only ever sees exec, shell and GIT_PROTOCOL.
type filteredChannel struct {
	gossh.NewChannel
}

func (f filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := f.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go func() {
		defer close(out)
		seen, envSet := 0, false
		for req := range reqs {
			if seen++; seen > maxRequests {
				ch.Close()
				continue
			}
			switch req.Type {
			case "exec", "shell":
				out <- req
				continue
			case "env":
				var kv struct{ Name, Value string }
				if gossh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" && !envSet && gitservice.ValidProtocol(kv.Value) {
					envSet = true
					out <- req
					continue
				}
			}
			// pty-req, x11-req, auth-agent-req@openssh.com, subsystem, signal,
			// window-change, break and anything else: no.
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}()
	return ch, out, nil
}

func generateHostKey(path string) error {
	_, err := sshkey.Generate(path, "cpm host key")
	return err
}
