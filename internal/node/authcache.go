package node

import (
	"context"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/authcache"
	"cpm/internal/metrics"
)

// startAuthCache puts a cache in front of the gateway's authentication
// and authorization reads when the store is PostgreSQL, and keeps it in
// step with the database until ctx ends; the returned channel closes
// when its listener has let go of its connection. Only a long-lived
// serving process does this: a forced-command process lives for one
// session and reads the database.
func (n *Node) startAuthCache(ctx context.Context, reg *prometheus.Registry) <-chan struct{} {
	done := make(chan struct{})
	if !n.Store.AuthCacheable() {
		close(done)
		return done
	}
	c := authcache.New()
	n.Gateway.Access = n.Gateway.Access.WithCache(c)
	n.Store.OnChange(c.Invalidate)
	metrics.RegisterAuthCache(reg, c)
	name := n.Self.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	go func() {
		defer close(done)
		authcache.Listen(ctx, n.Store, c, fmt.Sprintf("%s pid %d", name, os.Getpid()), n.Log)
	}()
	return done
}
