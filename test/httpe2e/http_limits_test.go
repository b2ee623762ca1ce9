package httpe2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestHTTPLimits: the HTTP listener takes at most per_source_max_startups
// connections from one address (more are closed at once), and speaks
// HTTP/1.1 only, even to a client that offers HTTP/2.
func TestHTTPLimits(t *testing.T) {
	h := newHTTPWorld(t, true, "--per-source-max-startups", "2")

	t.Run("HTTP/1.1 only", func(t *testing.T) {
		pem, _ := os.ReadFile(h.ca)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}}}
		resp, err := c.Get(h.url("acme/pub.git/info/refs?service=git-upload-pack"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusOK {
			t.Errorf("a client offering h2 got %s %d", resp.Proto, resp.StatusCode)
		}
	})
	t.Run("connections per source", func(t *testing.T) {
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", h.srv.HTTPAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			held = append(held, c)
		}
		third, err := net.Dial("tcp", h.srv.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer third.Close()
		third.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := third.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
			t.Errorf("a third connection from one address was kept: %d %v", n, err)
		}
		held[0].Close()
		// Its slot is free again (the server notices the close on its
		// read, within a moment).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := h.client().Get(h.url("acme/pub.git/info/refs?service=git-upload-pack"))
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no connection after one was closed: %v", err)
			}
		}
	})
}

// isReset is a connection the server closed with unread data (a reset).
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
