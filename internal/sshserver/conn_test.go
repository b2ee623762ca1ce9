package sshserver

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestDeadlineConn(t *testing.T) {
	long := time.Hour
	tests := []struct {
		name   string
		limits Limits
		authed bool
		// gap between the bytes the peer sends; 0 sends nothing
		gap      time.Duration
		sends    int
		wantIdle bool // the read ends with a deadline error
	}{
		{"silent before authentication: handshake deadline", Limits{HandshakeTimeout: 100 * time.Millisecond, IdleTimeout: long, MaxSessionTime: long}, false, 0, 0, true},
		{"silent after authentication: idle timeout", Limits{HandshakeTimeout: long, IdleTimeout: 200 * time.Millisecond, MaxSessionTime: long}, true, 0, 0, true},
		{"authentication lifts the handshake deadline", Limits{HandshakeTimeout: 100 * time.Millisecond, IdleTimeout: long, MaxSessionTime: long}, true, 300 * time.Millisecond, 1, false},
		{"busy connection outlives its idle timeout", Limits{HandshakeTimeout: long, IdleTimeout: 300 * time.Millisecond, MaxSessionTime: long}, true, 50 * time.Millisecond, 20, false},
		{"busy connection still ends at the maximum", Limits{HandshakeTimeout: long, IdleTimeout: long, MaxSessionTime: 300 * time.Millisecond}, true, 50 * time.Millisecond, 40, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			dc := newDeadlineConn(server, tc.limits, func() {})
			defer dc.Close()
			if tc.authed {
				dc.authenticated()
			}
			// gliderlabs does this before every read and write.
			dc.SetDeadline(time.Time{})
			go func() {
				for range tc.sends {
					time.Sleep(tc.gap)
					if _, err := client.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
			var err error
			buf := make([]byte, 1)
			for i := 0; i < tc.sends || tc.sends == 0; i++ {
				if _, err = dc.Read(buf); err != nil {
					break
				}
			}
			if tc.sends == 0 || tc.wantIdle && err == nil {
				_, err = dc.Read(buf)
			}
			if got := errors.Is(err, os.ErrDeadlineExceeded); got != tc.wantIdle {
				t.Fatalf("read error %v, want deadline exceeded: %v", err, tc.wantIdle)
			}
		})
	}
}
