package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"cpm/internal/authlimit"
	"cpm/internal/clientaddr"
	"cpm/internal/config"
	"cpm/internal/githttp"
	"cpm/internal/httpserver"
	"cpm/internal/lfshttp"
	"cpm/internal/metrics"
)

// bindHTTP opens http_listen's socket, before any session is served:
// without http_url, the base URL that git-lfs-authenticate and the batch
// API write is made of the address it got (a port chosen at start, too),
// unless that address is a wildcard or a proxy stands in front.
func (n *Node) bindHTTP() (net.Listener, error) {
	raw, err := net.Listen("tcp", n.Conf.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", n.Conf.HTTP.Listen, err)
	}
	if n.Conf.HTTP.URL == "" {
		n.Gateway.HTTPURL, n.Gateway.HTTPURLUnsafe = n.httpAt(raw).TokenURL(len(n.Conf.ProxyAllow) > 0)
	}
	return raw, nil
}

// httpAt is the HTTP settings with the address raw listens at.
func (n *Node) httpAt(raw net.Listener) config.HTTP {
	at := n.Conf.HTTP
	at.Listen = raw.Addr().String()
	return at
}

// listenHTTP serves git over HTTP(S) on raw (bindHTTP), with the same
// gateway as ssh; with tls_cert it is HTTPS, its certificate read again
// on every SIGHUP.
func (n *Node) listenHTTP(ctx context.Context, srv *servers, m *metrics.Gateway, raw net.Listener) (string, error) {
	c := n.Conf
	var certs *httpserver.Certificates
	if c.HTTP.TLS() {
		var err error
		if certs, err = httpserver.LoadCertificates(c.HTTP.TLSCert, c.HTTP.TLSKey); err != nil {
			raw.Close()
			return "", err
		}
	}
	h := &githttp.Handler{Gateway: n.Gateway, Tokens: n.Gateway.Tokens, ProxyAllow: c.ProxyAllow,
		ForwardedHeader: clientaddr.Header(c.HTTP.ForwardedHeader),
		Limiter:         authlimit.New("http", authlimit.Config{}, metrics.NewAuth(m.Registry)),
		BaseURL:         n.httpAt(raw).BaseURL(), Log: n.Log,
		LFS: &lfshttp.Handler{Gateway: n.Gateway, BaseURL: n.Gateway.HTTPURL}}
	srv.http = httpserver.New(h, httpserver.Limits{
		Header:      c.HandshakeTimeout,
		Idle:        c.IdleTimeout,
		Request:     c.MaxSessionTime,
		HeaderBytes: httpserver.MaxHeaderBytes,
	}, certs, n.Log)
	h.Linger = srv.http.Stopped()
	limited := httpserver.LimitConns(raw, httpserver.ConnLimits{Total: c.MaxStartups.Full, PerSource: c.MaxPerSource,
		Exempt: func(a netip.Addr) bool { return clientaddr.Trusted(a, c.ProxyAllow) }})
	ln := clientaddr.Listen(limited, clientaddr.Mode(c.ProxyProtocol), c.ProxyAllow)
	go func() { srv.errc <- srv.http.Serve(ln) }()
	return raw.Addr().String(), nil
}

// gitSlots is how many git requests the HTTP listener serves at once
// (a quarter of them anonymous); more wait for a 503's Retry-After.
const gitSlots = 32

// reloadOnHangup reads the HTTP listener's TLS certificate again on
// each SIGHUP (systemctl reload) until ctx ends; a bad file keeps the
// one in use. Without one, SIGHUP does nothing (rather than end the
// server, its default).
func (n *Node) reloadOnHangup(ctx context.Context, s *httpserver.Server) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if s == nil {
				n.Log.Info().Msg("SIGHUP: no TLS certificate to reload")
				continue
			}
			if err := s.Reload(); err != nil {
				n.Log.Error().Err(err).Msg("tls reload")
				continue
			}
			n.Log.Info().Msg("tls certificate reloaded")
		}
	}
}
