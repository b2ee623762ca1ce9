package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cpm/internal/pins"
	"cpm/internal/store"
)

// openCluster finds this node's row when the data directory is a cluster
// node (DATA/node), and makes what the node creates have it as primary.
// Outside a cluster it leaves n.Self zero: everything as on a single
// installation.
func (n *Node) openCluster(ctx context.Context) error {
	name, err := n.Dir.NodeName()
	if err != nil || name == "" {
		return err
	}
	self, err := n.Store.NodeByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("this data directory is node %s (%s), which the cluster's database does not know: run cpm-admin init --node-name %s --advertise HOST:PORT again",
			name, n.Dir.NodeFile(), name)
	}
	if err != nil {
		return err
	}
	n.Self = self
	n.Store.PlaceAs(store.Placing{Node: self.Name, Replicas: n.Conf.Replicas, Lease: n.Conf.Lease})
	return nil
}

// pinsWhenChanged returns the workers' Beat: it rewrites DATA/known_hosts
// when the servers' names, addresses or host keys changed since it last
// looked, so that a node that joined the cluster is reached with its pin
// without a restart here.
func (n *Node) pinsWhenChanged() func(context.Context) {
	var last string
	return func(ctx context.Context) {
		servers, err := n.Store.Servers(ctx)
		if err != nil {
			return // the heartbeat logs a database that is away
		}
		var b strings.Builder
		for _, s := range servers {
			fmt.Fprintf(&b, "%s %s %d %s\n", s.Name, s.Host, s.Port, s.HostKey)
		}
		if b.String() == last {
			return
		}
		if err := pins.Write(ctx, n.Store, n.Dir); err != nil {
			n.Log.Warn().Err(err).Msg("pin host keys")
			return
		}
		last = b.String()
	}
}
