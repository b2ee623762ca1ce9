package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"cpm/internal/admin"
	"cpm/internal/discover"
	"cpm/internal/remote"
	"cpm/internal/replkey"
	"cpm/internal/store"
)

type neighborCmd struct {
	Discover neighborDiscoverCmd `cmd:"" help:"Find cpm nodes on a network through their git:// port."`
}

type neighborDiscoverCmd struct {
	CIDR  string `arg:"" optional:"" name:"CIDR" help:"Network to scan, e.g. 192.168.1.0/24; only its addresses are touched. Without it: this machine's own networks (--local)."`
	Local bool   `help:"Scan this machine's own IPv4 networks (not loopback; one larger than a /24 needs --force). The default without CIDR."`
	Port  int    `default:"9418" help:"git:// port the nodes listen on."`
	Add   bool   `help:"Register the nodes found as neighbor servers (unapproved)."`
	Yes   bool   `help:"With --add: approve them at once."`
	Force bool   `help:"Allow a network larger than a /16 (with CIDR), or a local one larger than a /24."`
	Path  string `default:"/var/lib/cpm/replicas" help:"With --add: replica path on the nodes."`
	User  string `default:"cpm" help:"With --add: ssh user on the nodes."`
	JSON  bool   `name:"json" help:"Print a JSON array."`
}

func (c neighborDiscoverCmd) Run(e *env, svc *admin.Service) error {
	nodes, err := c.scan(e)
	if err != nil {
		return err
	}
	if c.JSON && !c.Add {
		return printJSON(e.stdout, nodes)
	}
	if !c.JSON {
		rows := make([][]string, 0, len(nodes))
		for _, n := range nodes {
			rows = append(rows, []string{n.Host, strconv.Itoa(n.Port), n.Name, n.Version, strconv.Itoa(n.SSHPort)})
		}
		if err := printTable(e.stdout, []string{"HOST", "PORT", "NODE", "VERSION", "SSH PORT"}, rows); err != nil {
			return err
		}
	}
	if !c.Add {
		return nil
	}
	c.addAll(e, svc, nodes)
	if c.JSON {
		return printJSON(e.stdout, nodes)
	}
	return nil
}

// scan probes the CIDR given, or this machine's own networks, which it
// names first (not with --json: stdout is then one JSON array).
func (c neighborDiscoverCmd) scan(e *env) ([]discover.Node, error) {
	const concurrency, timeout = 50, 2 * time.Second
	if c.CIDR != "" {
		if c.Local {
			return nil, fmt.Errorf("give a CIDR or --local, not both")
		}
		prefix, err := netip.ParsePrefix(c.CIDR)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", c.CIDR)
		}
		return discover.Scan(e.ctx, prefix, c.Port, concurrency, timeout, c.Force)
	}
	ifs, err := discover.Interfaces()
	if err != nil {
		return nil, err
	}
	nets := discover.LocalNetworks(ifs, c.Force)
	scanned := 0
	for _, n := range nets {
		if n.Skipped == "" {
			scanned++
		}
		if c.JSON {
			continue
		}
		if n.Skipped != "" {
			fmt.Fprintf(e.stdout, "skipped %s (%s): %s\n", n.Prefix, n.Interface, n.Skipped)
		} else {
			fmt.Fprintf(e.stdout, "scanning %s (%s)\n", n.Prefix, n.Interface)
		}
	}
	if scanned == 0 {
		return nil, fmt.Errorf("no local IPv4 network to scan (loopback is never scanned; one larger than a /%d needs --force)", discover.MaxLocalBits)
	}
	return discover.ScanNetworks(e.ctx, nets, c.Port, concurrency, timeout, c.Force)
}

type serverApproveCmd struct {
	Name          string `arg:"" help:"Server name."`
	ForwardPushes bool   `name:"forward-pushes" help:"Also take pushes that this neighbour's users make to its replicas, performed here as the same user."`
}

func (c serverApproveCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.ApproveServer(e.ctx, c.Name, c.ForwardPushes); err != nil {
		return err
	}
	srv, err := svc.Store.ServerByName(e.ctx, c.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approved %s; syncs to it start now\n", srv.Name)
	if srv.ForwardPushes {
		fmt.Fprintf(e.stdout, "%s may forward the pushes its users make to its replicas; they are made here as the same user\n", srv.Name)
	}
	if srv.PeerFingerprint != "" {
		fmt.Fprintf(e.stdout, "%s may deliver its replicas here, signed with %s\n", srv.Name, srv.PeerFingerprint)
	}
	return nil
}

// addAll registers every discovered node but this one as a neighbour,
// approved only with --yes.
func (c neighborDiscoverCmd) addAll(e *env, svc *admin.Service, nodes []discover.Node) {
	// This node answers its own scan: it is known by its replication key.
	self, _ := replkey.PublicKey(e.dir)
	if self != "" {
		self, _ = remote.ParseHostKey(self)
	}
	for _, n := range nodes {
		if n.Key != "" && n.Key == self {
			fmt.Fprintf(e.stdout, "skipped %s (%s): this node\n", n.Name, n.Host)
			continue
		}
		name := n.Name
		if _, err := svc.Store.ServerByName(e.ctx, name); err == nil {
			// Two nodes may share a host name; the address tells them apart.
			name = n.Name + "-" + n.Host
		}
		c.add(e, svc, n, name)
	}
}

// add registers one discovered node as a neighbour named name.
func (c neighborDiscoverCmd) add(e *env, svc *admin.Service, n discover.Node, name string) {
	srv, err := svc.AddServer(e.ctx, e.dir, admin.ServerSpec{
		Name: name, Host: n.Host, Port: n.SSHPort, User: c.User, Path: c.Path, Role: store.Neighbor, Unapproved: !c.Yes,
		PeerKey: n.Key,
	}, func(fp string) bool {
		// Shown, and pinned; syncs wait for approval unless --yes.
		fmt.Fprintf(e.stdout, "%s (%s:%d) presents host key %s\n", n.Name, n.Host, n.SSHPort, fp)
		if n.Key != "" {
			fmt.Fprintf(e.stdout, "%s delivers replicas with key %s\n", n.Name, remote.Fingerprint(n.Key))
		}
		return true
	})
	if err != nil {
		fmt.Fprintf(e.stdout, "not added %s: %v\n", n.Name, err)
		return
	}
	state := "unapproved: run cpm-admin server approve " + srv.Name + " after checking the key"
	if srv.Approved {
		state = "approved"
	}
	fmt.Fprintf(e.stdout, "added neighbor %s (%s)\n", srv.Name, state)
}
