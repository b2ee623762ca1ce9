// Package listener runs the accept loop that cpm's servers share: hand
// every connection to a handler, ride out temporary accept errors, and
// end quietly once the server is shutting down.
package listener

import (
	"errors"
	"net"
	"time"
)

// Serve accepts on ln until it fails. When stopping reports true at that
// point, the failure is the listener being closed on purpose and Serve
// returns nil.
func Serve(ln net.Listener, stopping func() bool, handle func(net.Conn)) error {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if stopping() {
				return nil
			}
			// Out of file descriptors and the like (net still marks these
			// temporary): wait and try again rather than stop serving.
			var temp interface{ Temporary() bool }
			if errors.As(err, &temp) && temp.Temporary() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return err
		}
		backoff = 5 * time.Millisecond
		handle(c)
	}
}
