// Package clientaddr puts cpm's listeners behind a TCP load balancer
// without losing the client's address: it reads the PROXY protocol
// header (v1 or v2) that the balancers named in proxy_allow send, so
// that logs, the audit log, metrics and a certificate's source-address
// check all see the client, not the balancer.
package clientaddr

import (
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// Mode is how a listener treats PROXY headers.
type Mode string

const (
	Off      Mode = "off"      // no header is read; none is expected
	Optional Mode = "optional" // from an allowed balancer, a header is used if sent; others are served plain
	Required Mode = "required" // only allowed balancers connect, and each must send a header
)

// HeaderTimeout bounds how long a balancer may take to send its header.
const HeaderTimeout = 5 * time.Second

// Listen wraps ln so that RemoteAddr of its connections is the client's
// address from the PROXY header of an allowed balancer. In Required
// mode connections from elsewhere are closed at once, and one from an
// allowed balancer without a header fails on its first read.
func Listen(ln net.Listener, mode Mode, allow []netip.Prefix) net.Listener {
	if mode == Off || mode == "" {
		return ln
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: HeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if allowed(o.Upstream, allow) {
				if mode == Required {
					return proxyproto.REQUIRE, nil
				}
				return proxyproto.USE, nil
			}
			if mode == Required {
				return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
			}
			// Served as it is: a header from here is not read, so a forged
			// one only breaks the connection it came on.
			return proxyproto.SKIP, nil
		},
	}
}

func allowed(a net.Addr, allow []netip.Prefix) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && Trusted(tcp.AddrPort().Addr(), allow)
}
