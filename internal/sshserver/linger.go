package sshserver

import (
	"context"
	"time"

	"github.com/gliderlabs/ssh"
)

// linger is the context a push runs in (gateway.Session.Linger): the
// client hanging up does not end it; the connection's maximum time and
// the end of shutdown's grace do.
func (s *Server) linger(ctx ssh.Context) (context.Context, context.CancelFunc) {
	end := time.Now().Add(s.limits.MaxSessionTime)
	if dc, ok := ctx.Value(connKey).(*deadlineConn); ok {
		end = dc.max
	}
	return context.WithDeadline(s.stopped, end)
}

// killWait bounds the wait for killed sessions: gitservice.Run gives a
// killed command's output 5 s to drain.
const killWait = 6 * time.Second
