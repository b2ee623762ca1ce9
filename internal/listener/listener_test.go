package listener

import (
	"net"
	"sync/atomic"
	"testing"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stopping atomic.Bool
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ln, stopping.Load, func(c net.Conn) { c.Close(); got <- struct{}{} })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-got
	stopping.Store(true)
	ln.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after a deliberate close: %v", err)
	}
}
