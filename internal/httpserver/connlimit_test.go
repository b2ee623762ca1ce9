package httpserver

import (
	"net"
	"net/netip"
	"testing"
)

func TestConnLimits(t *testing.T) {
	proxy := netip.MustParseAddr("10.0.0.2")
	c := LimitConns(nil, ConnLimits{Total: 5, PerSource: 2, Exempt: func(a netip.Addr) bool { return a == proxy }}).(*connLimiter)
	at := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	var leaves []func()
	for i, tc := range []struct {
		addr string
		ok   bool
	}{
		{"192.0.2.1:1", true}, {"192.0.2.1:2", true}, {"192.0.2.1:3", false}, // per source
		{"[2001:db8::1]:1", true}, {"[2001:db8::2]:1", true}, {"[2001:db8::3]:1", false}, // one /64
		{"10.0.0.2:1", true},                          // a proxy: not per source
		{"10.0.0.2:2", false}, {"192.0.2.9:1", false}, // total
	} {
		leave, ok := c.enter(at(tc.addr))
		if ok != tc.ok {
			t.Errorf("%d %s: %v, want %v", i, tc.addr, ok, tc.ok)
		}
		if ok {
			leaves = append(leaves, leave)
		}
	}
	leaves[0]()
	leaves[0]() // once only
	if _, ok := c.enter(at("192.0.2.1:4")); !ok {
		t.Error("a slot freed is not taken again")
	}
	if _, ok := c.enter(at("192.0.2.7:1")); ok {
		t.Error("a second Close freed a second slot")
	}
}
