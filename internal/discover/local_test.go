package discover

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestLocalNetworks(t *testing.T) {
	p := netip.MustParsePrefix
	up := func(name string, addrs ...string) Interface {
		i := Interface{Name: name, Up: true}
		for _, a := range addrs {
			i.Addrs = append(i.Addrs, p(a))
		}
		return i
	}
	lo := up("lo", "127.0.0.1/8", "::1/128")
	lo.Loopback = true
	down := up("eth9", "10.9.0.1/24")
	down.Up = false
	tests := []struct {
		name  string
		ifs   []Interface
		force bool
		want  []Network
	}{
		{"loopback skipped", []Interface{lo}, false, nil},
		{"loopback address on another interface skipped", []Interface{up("x0", "127.0.0.2/8")}, false, nil},
		{"interface down skipped", []Interface{down}, false, nil},
		{"IPv6 ignored", []Interface{up("eth0", "fe80::1/64", "2001:db8::1/64")}, false, nil},
		{"link-local ignored", []Interface{up("eth0", "169.254.3.4/16")}, false, nil},
		{"a /24 is masked and scanned", []Interface{up("eth0", "192.168.1.17/24")}, false,
			[]Network{{Prefix: p("192.168.1.0/24"), Interface: "eth0"}}},
		{"a /16 needs --force", []Interface{up("eth0", "10.1.2.3/16")}, false,
			[]Network{{Prefix: p("10.1.0.0/16"), Interface: "eth0", Skipped: "larger than a /24; --force scans it"}}},
		{"a /16 with --force", []Interface{up("eth0", "10.1.2.3/16")}, true,
			[]Network{{Prefix: p("10.1.0.0/16"), Interface: "eth0"}}},
		{"smaller than a /24 is fine", []Interface{up("eth0", "10.1.2.3/28")}, false,
			[]Network{{Prefix: p("10.1.2.0/28"), Interface: "eth0"}}},
		{"the same network twice is scanned once, in address order",
			[]Interface{lo, up("eth1", "10.2.0.9/24", "10.2.0.10/24"), up("eth0", "10.1.0.1/24"), up("br0", "10.2.0.1/24")}, false,
			[]Network{{Prefix: p("10.1.0.0/24"), Interface: "eth0"}, {Prefix: p("10.2.0.0/24"), Interface: "eth1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LocalNetworks(tc.ifs, tc.force); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
