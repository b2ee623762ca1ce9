package clientaddr

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestFromHeaders(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, peer string
		h          http.Header
		want       string
	}{
		{"no proxy", "192.0.2.1:5000", http.Header{}, "192.0.2.1:5000"},
		{"untrusted peer's header ignored", "192.0.2.1:5000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "192.0.2.1:5000"},
		{"trusted proxy", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"forged left part skipped", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"chain of proxies", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"203.0.113.9, 10.0.0.7"}}, "203.0.113.9"},
		{"Forwarded wins", "10.0.0.2:5000", http.Header{"Forwarded": {`for="[2001:db8::1]:4711";proto=https`}, "X-Forwarded-For": {"203.0.113.9"}}, "2001:db8::1"},
		{"garbage", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"evil\nx"}}, "10.0.0.2:5000"},
		{"only proxies", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"10.0.0.3"}}, "10.0.0.2:5000"},
	} {
		if got := FromHeaders(tc.peer, tc.h, allow); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
