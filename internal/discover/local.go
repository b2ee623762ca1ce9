package discover

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"
)

// MaxLocalBits is the smallest local network scanned without --force: a
// /24. A machine on a larger network (a /16 office or cloud VPC) would
// otherwise probe tens of thousands of hosts it was never asked to.
const MaxLocalBits = 24

// Interface is what LocalNetworks needs of one network interface.
type Interface struct {
	Name     string
	Up       bool
	Loopback bool
	Addrs    []netip.Prefix // the interface's addresses, with their prefix length
}

// Network is one of this machine's own networks.
type Network struct {
	Prefix    netip.Prefix `json:"network"`
	Interface string       `json:"interface"`
	// Skipped says why the network is not scanned; empty when it is.
	Skipped string `json:"skipped,omitempty"`
}

// Interfaces reads this machine's network interfaces.
func Interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ifs))
	for _, ni := range ifs {
		addrs, err := ni.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ni.Name, err)
		}
		i := Interface{Name: ni.Name, Up: ni.Flags&net.FlagUp != 0, Loopback: ni.Flags&net.FlagLoopback != 0}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil {
					i.Addrs = append(i.Addrs, p)
				}
			}
		}
		out = append(out, i)
	}
	return out, nil
}

// LocalNetworks picks the IPv4 networks of ifs that a local discovery
// scans, in address order, each once: not loopback, not link-local (a
// 169.254/16 is no network anyone set up), on interfaces that are up.
// One larger than a /24 is listed as skipped unless force.
func LocalNetworks(ifs []Interface, force bool) []Network {
	seen := map[netip.Prefix]bool{}
	var nets []Network
	for _, i := range ifs {
		if !i.Up || i.Loopback {
			continue
		}
		for _, a := range i.Addrs {
			addr := a.Addr().Unmap()
			if !addr.Is4() || addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsUnspecified() {
				continue
			}
			p := netip.PrefixFrom(addr, a.Bits()).Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			n := Network{Prefix: p, Interface: i.Name}
			if p.Bits() < MaxLocalBits && !force {
				n.Skipped = fmt.Sprintf("larger than a /%d; --force scans it", MaxLocalBits)
			}
			nets = append(nets, n)
		}
	}
	sort.Slice(nets, func(a, b int) bool {
		if c := nets[a].Prefix.Addr().Compare(nets[b].Prefix.Addr()); c != 0 {
			return c < 0
		}
		return nets[a].Prefix.Bits() < nets[b].Prefix.Bits()
	})
	return nets
}

// ScanNetworks scans every network of nets that is not skipped, as Scan
// does, and returns the cpm nodes of all of them in address order.
func ScanNetworks(ctx context.Context, nets []Network, port, concurrency int, timeout time.Duration, force bool) ([]Node, error) {
	var found []Node
	for _, n := range nets {
		if n.Skipped != "" {
			continue
		}
		nodes, err := Scan(ctx, n.Prefix, port, concurrency, timeout, force)
		if err != nil {
			return nil, fmt.Errorf("scan %s (%s): %w", n.Prefix, n.Interface, err)
		}
		found = append(found, nodes...)
	}
	sortNodes(found)
	return found, nil
}
