package clientaddr

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"
)

func TestFromHeaders(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	bad := "bad"
	for _, tc := range []struct {
		name, peer string
		header     Header
		h          http.Header
		want       string
	}{
		{"no proxy", "192.0.2.1:5000", XForwardedFor, http.Header{}, "192.0.2.1:5000"},
		{"untrusted peer's header ignored", "192.0.2.1:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "192.0.2.1:5000"},
		{"trusted proxy", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"forged left part skipped", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"forged header line skipped", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"1.1.1.1", "203.0.113.9"}}, "203.0.113.9"},
		{"chain of proxies", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"203.0.113.9, 10.0.0.7"}}, "203.0.113.9"},
		{"client's Forwarded ignored (xff)", "10.0.0.2:5000", XForwardedFor, http.Header{"Forwarded": {`for="[2001:db8::1]:4711"`}, "X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"client's XFF ignored (forwarded)", "10.0.0.2:5000", Forwarded, http.Header{"Forwarded": {`for="[2001:db8::1]:4711";proto=https`}, "X-Forwarded-For": {"203.0.113.9"}}, "2001:db8::1"},
		{"forged Forwarded left part", "10.0.0.2:5000", Forwarded, http.Header{"Forwarded": {`for=1.1.1.1, for=203.0.113.9`}}, "203.0.113.9"},
		{"no header from the proxy", "10.0.0.2:5000", XForwardedFor, http.Header{"Forwarded": {"for=1.1.1.1"}}, "10.0.0.2:5000"},
		{"garbage rightmost", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"203.0.113.9, evil\nx"}}, bad},
		{"garbage left of the client is not read", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"evil, 203.0.113.9"}}, "203.0.113.9"},
		{"obfuscated Forwarded", "10.0.0.2:5000", Forwarded, http.Header{"Forwarded": {"for=_hidden"}}, bad},
		{"only proxies", "10.0.0.2:5000", XForwardedFor, http.Header{"X-Forwarded-For": {"10.0.0.3"}}, "10.0.0.3"},
	} {
		got, err := FromHeaders(tc.peer, tc.h, allow, tc.header)
		if tc.want == bad {
			if !errors.Is(err, ErrBadHop) {
				t.Errorf("%s: %q, %v; want ErrBadHop", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestViaProxyProtocol: a connection whose address came from a PROXY
// header is told from one without (forwarded headers are then ignored).
func TestViaProxyProtocol(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go client.Write([]byte("PROXY TCP4 192.0.2.7 192.0.2.1 4711 443\r\nGET / HTTP/1.1\r\n"))
	pc := proxyproto.NewConn(server)
	if !ViaProxyProtocol(ConnContext(context.Background(), pc)) {
		t.Error("a connection with a PROXY header is not told")
	}
	plain, other := net.Pipe()
	defer plain.Close()
	defer other.Close()
	if ViaProxyProtocol(ConnContext(context.Background(), plain)) || ViaProxyProtocol(context.Background()) {
		t.Error("a plain connection counts as one with a PROXY header")
	}
}
