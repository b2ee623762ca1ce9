package clientaddr

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pires/go-proxyproto"
)

// Header is the one forwarded-for header the HTTP listener believes
// (http_forwarded_header). Exactly one: a proxy adds its own and passes
// the other through as the client sent it, so believing both lets a
// client choose its address.
type Header string

const (
	XForwardedFor Header = "x-forwarded-for" // HAProxy's option forwardfor, nginx's proxy_add_x_forwarded_for
	Forwarded     Header = "forwarded"       // RFC 7239
)

// ErrBadHop is a forwarded chain whose hop added by a trusted proxy
// cannot be read: the request is refused (400) rather than served as the
// proxy's, which would lock everyone behind it out together.
var ErrBadHop = errors.New("unreadable forwarded-for address")

// FromHeaders is the client's address of an HTTP request that peer (the
// connection's address, "ip:port") made: behind a reverse proxy in
// allow, the rightmost hop of header's chain that is not itself such a
// proxy (each proxy appends the address it saw; what is left of it the
// client may have written). peer itself when peer is not a trusted
// proxy (anyone may send those headers) or header is absent.
func FromHeaders(peer string, h http.Header, allow []netip.Prefix, header Header) (string, error) {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil || !Trusted(ap.Addr(), allow) {
		return peer, nil
	}
	var chain []string
	if header == Forwarded {
		chain = forwardedFor(h.Values("Forwarded"))
	} else {
		for _, v := range h.Values("X-Forwarded-For") {
			for _, f := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(f))
			}
		}
	}
	if len(chain) == 0 {
		return peer, nil
	}
	var ip netip.Addr
	for i := len(chain) - 1; i >= 0; i-- {
		if ip, err = netip.ParseAddr(strings.Trim(chain[i], "[]")); err != nil {
			return "", fmt.Errorf("%w (%s hop %d)", ErrBadHop, header, i+1)
		}
		if !Trusted(ip, allow) {
			break
		}
	}
	return ip.Unmap().String(), nil
}

// forwardedFor lists the for= values of Forwarded headers, in order.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				val = strings.Trim(val, `"`)
				if host, _, err := net.SplitHostPort(val); err == nil {
					val = host
				}
				out = append(out, val)
			}
		}
	}
	return out
}

// Trusted is whether ip is in one of allow's prefixes (proxy_allow).
func Trusted(ip netip.Addr, allow []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type connKey struct{}

// ConnContext keeps an HTTP connection in its context (http.Server's
// ConnContext) so that ViaProxyProtocol can ask it later: the PROXY
// header is read on the connection's first read, not in the accept loop.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// ViaProxyProtocol is whether the request's connection got its address
// from a PROXY header: then the balancer named the client, and forwarded
// headers are the client's own words.
func ViaProxyProtocol(ctx context.Context) bool {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	p, ok := c.(*proxyproto.Conn)
	return ok && p.ProxyHeader() != nil
}
