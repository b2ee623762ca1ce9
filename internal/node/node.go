// Package node wires one cpm node together from its data directory and
// settings: the store, the gateway, the git:// listener, metrics and the
// replication workers. cpm-shell's modes (serve, replicate, the OpenSSH
// forced command) each open a Node and run the part they need.
package node

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/config"
	"cpm/internal/datadir"
	"cpm/internal/gateway"
	"cpm/internal/lease"
	"cpm/internal/lfshttp"
	"cpm/internal/metrics"
	"cpm/internal/names"
	"cpm/internal/ondemand"
	"cpm/internal/peer"
	"cpm/internal/replica"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Node is an opened data directory with its gateway wired.
type Node struct {
	Conf     config.Config
	Dir      datadir.Dir
	Log      zerolog.Logger
	Store    *store.Store
	Replicas *replica.Set
	Disk     repos.Root
	Gateway  *gateway.Gateway
	// Self is this node's row in its cluster (ID 0 outside one).
	Self store.Server

	keeper *lease.Keeper // a cluster node's lease, once startLeases ran
	// failover counts elections and handovers (nil: no metrics).
	failover *metrics.Failover
	// Pushes counts pushes acknowledged without their replicas (nil: no
	// metrics).
	Pushes *metrics.Pushes
}

// Open opens the data directory's store and wires the gateway; Close
// releases what it opened.
func Open(ctx context.Context, conf config.Config, dir datadir.Dir, log zerolog.Logger) (*Node, error) {
	hookBin, err := repos.HookBinBeside()
	if err != nil {
		return nil, err
	}
	database, err := dir.Database(conf.Database)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenAt(ctx, database, dir.DB())
	if err != nil {
		return nil, err
	}
	name, err := st.NodeName(ctx)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("read node name: %w", err)
	}
	n := &Node{Conf: conf, Dir: dir, Log: log, Store: st, Replicas: replica.New(dir.Peers()), Disk: repos.RootOf(dir, hookBin)}
	if err := n.openCluster(ctx); err != nil {
		st.Close()
		return nil, err
	}
	// The node's name in its cluster ("" outside one) is the data
	// directory's; the store's node name is shared by every node there.
	self := n.Self.Name
	if self != "" {
		name = self
	}
	checker := access.New(st, n.Replicas)
	n.Gateway = &gateway.Gateway{
		Access:           checker,
		Tokens:           checker,
		Store:            st,
		Disk:             n.Disk,
		DataDir:          dir,
		Log:              log,
		LFSMaxObjectSize: conf.LFSMaxObjectSize,
		Peers:            &peer.Receiver{Store: st, Replicas: n.Replicas, Disk: n.Disk, TempDir: dir.Tmp(), Node: name, Self: self, WriteTimeout: peer.WriteTimeoutFor(conf.SyncTimeout)},
		SendToPeer:       n.sendToPeer,
		Forward:          n.forward,
		Self:             self,
		Relay:            n.relay,
		Gate:             gateway.NewWriteGate(dir.Locks()),
	}
	if n.Self.ID != 0 {
		n.Gateway.Fence = storeFence{st: st, id: n.Self.ID} // a serving node's own lease keeper replaces it
	}
	n.wireHTTP()
	return n, nil
}

// wireHTTP sets up the gateway's part in HTTP: the Git LFS HTTP API
// requests other nodes relay here (served even without an HTTP server of
// this node's own), and git-lfs-authenticate's answer, which a
// forced-command session gives for the HTTP server that cpm-shell serve
// runs with the same settings.
func (n *Node) wireHTTP() {
	n.Gateway.LFSHTTP = &lfshttp.Handler{Gateway: n.Gateway}
	if n.Conf.HTTP.Listen != "" {
		n.Gateway.HTTPURL, n.Gateway.HTTPURLUnsafe = n.Conf.HTTP.TokenURL(len(n.Conf.ProxyAllow) > 0)
		n.Gateway.LFSTokens = gateway.StoreTokens{Store: n.Store}
	}
}

// sendToPeer syncs one repository to a neighbour that asked for it (want,
// or after a forwarded push): only inside the neighbour's scope.
func (n *Node) sendToPeer(ctx context.Context, server string, repo names.RepoPath) (transfer.Result, error) {
	o := ondemand.OnDemand{Store: n.Store, Dir: n.Dir, Disk: n.Disk, Actor: store.Actor{Name: "peer:" + server},
		FreeMargin: n.Conf.FreeSpaceMargin}
	return o.Push(ctx, repo.String(), server, false)
}

// Close releases the store and the replicas' metadata.
func (n *Node) Close() error {
	rerr := n.Replicas.Close()
	if err := n.Store.Close(); err != nil {
		return err
	}
	return rerr
}
