// Package pins keeps DATA/known_hosts true to the store: one line per
// server, under the server's own HostKeyAlias (cpm-server.NAME), so that
// ssh checks each server against the key pinned for it and no other.
// cpm-admin rewrites it after every change of servers and at init; the
// workers rewrite it when they start, so that a data directory whose
// pins an older cpm wrote per host:port gets them per server.
package pins

import (
	"context"

	"cpm/internal/datadir"
	"cpm/internal/remote"
	"cpm/internal/store"
)

// Write replaces DATA/known_hosts with the pins of every server in st.
func Write(ctx context.Context, st *store.Store, dir datadir.Dir) error {
	servers, err := st.Servers(ctx)
	if err != nil {
		return err
	}
	var pins []remote.Pinned
	for _, srv := range servers {
		pins = append(pins, remote.Pinned{Name: srv.Name, HostKey: srv.HostKey})
	}
	return remote.WriteKnownHosts(dir.KnownHosts(), pins)
}
