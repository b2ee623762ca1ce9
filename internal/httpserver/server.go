// Package httpserver is cpm's HTTP(S) listener: net/http with a bound on
// every phase of a request (headers, each read and write of the body,
// the whole request, idle keep-alives), caps on connections (in all and
// per source) and on request headers, HTTP/1.1 only, a TLS
// certificate reloaded in place, and a graceful shutdown beside the ssh
// server's. What a request means is the handler's business
// (internal/githttp).
package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/clientaddr"
)

// Limits bound every request.
type Limits struct {
	// Header is how long a client may take from connecting (or from the
	// end of its last request) to the end of its request's headers:
	// a client that trickles them (slowloris) is cut off.
	Header time.Duration
	// Idle is how long one read or write of a body, and a keep-alive
	// connection between requests, may wait.
	Idle time.Duration
	// Request is the longest any one request may take.
	Request time.Duration
	// HeaderBytes caps the request line and headers; more is refused
	// with 431.
	HeaderBytes int
}

// MaxHeaderBytes is the header cap cpm uses: git's requests carry a few
// hundred bytes of headers, a browser's a few kilobytes.
const MaxHeaderBytes = 16 << 10

// Server serves one handler on one listener.
type Server struct {
	http  *http.Server
	certs *Certificates // nil: plain HTTP
	// stopped ends once shutdown's grace is over: what a request does
	// past its client (a push's hooks) ends there.
	stopped context.Context
	stop    context.CancelFunc
}

// New makes a server of h; with certs it serves HTTPS.
func New(h http.Handler, l Limits, certs *Certificates, logger zerolog.Logger) *Server {
	stopped, stop := context.WithCancel(context.Background())
	s := &Server{certs: certs, stopped: stopped, stop: stop}
	s.http = &http.Server{
		Handler:           bounded(h, l),
		ReadHeaderTimeout: l.Header,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.HeaderBytes,
		// A request asks its connection whether a PROXY header named
		// the client (forwarded headers are then not believed).
		ConnContext: clientaddr.ConnContext,
		// net/http's own complaints (TLS handshakes that fail, bad
		// requests) go to the log at debug level: a scan would flood it.
		ErrorLog: log.New(debugWriter{logger}, "", 0),
	}
	// HTTP/1.1 only: git and go speak it, and HTTP/2's many streams on
	// one connection would get past the per-connection limits.
	s.http.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	if certs != nil {
		s.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	}
	return s
}

// Stopped is the context that ends when shutdown's grace is over.
func (s *Server) Stopped() context.Context { return s.stopped }

// Serve serves ln until Shutdown; it returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	var err error
	if s.certs != nil {
		err = s.http.ServeTLS(ln, "", "")
	} else {
		err = s.http.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("http: %w", err)
}

// Shutdown stops accepting, lets running requests finish until ctx ends,
// then ends them (a push past its client included).
func (s *Server) Shutdown(ctx context.Context) {
	err := s.http.Shutdown(ctx)
	s.stop()
	if err != nil {
		s.http.Close()
	}
}

// Reload reads the certificate files again (SIGHUP); on failure the
// certificate in use stays.
func (s *Server) Reload() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Load()
}

type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Str("error", string(p)).Msg("http server")
	return len(p), nil
}
