package clientaddr

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// FromHeaders is the client's address of an HTTP request that peer (the
// connection's address, "ip:port") made: behind a reverse proxy in
// allow, the nearest address of the Forwarded (RFC 7239) or else
// X-Forwarded-For chain that is not itself such a proxy; peer itself
// when peer is not allowed to say (anyone may send those headers) or
// the chain names nothing usable.
func FromHeaders(peer string, h http.Header, allow []netip.Prefix) string {
	if !allowedAddr(peer, allow) {
		return peer
	}
	chain := forwardedFor(h.Values("Forwarded"))
	if len(chain) == 0 {
		for _, v := range h.Values("X-Forwarded-For") {
			for _, f := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(f))
			}
		}
	}
	// From the right: each hop was added by the proxy after it; the
	// first one not trusted is the client as far as we can know.
	for i := len(chain) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.Trim(chain[i], "[]"))
		if err != nil {
			return peer // a hop we cannot read: believe nothing further left
		}
		if !contains(allow, ip.Unmap()) {
			return ip.Unmap().String()
		}
	}
	return peer
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

func allowedAddr(hostport string, allow []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return err == nil && contains(allow, ap.Addr().Unmap())
}

func contains(allow []netip.Prefix, ip netip.Addr) bool {
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
