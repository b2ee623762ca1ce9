package replicate

import (
	"context"
	"errors"

	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/store"
)

// blockIfNeeded blocks srv when err is one that retrying cannot mend (a
// host key mismatch, a refused key, a promoted backup) and closes its
// connections; it reports whether it did. A neighbour refuses this node's
// key until its operator approves this node, another node of the cluster
// until it runs a cpm that knows this one: that is waited for, with
// backoff, not blocked. In a cluster a refused key is never a block: the
// server row is every node's, each node has its own key, and a backup
// that has not been given this node's key yet must not stop the nodes
// whose keys it has (the job's error names the cause).
func (w *Workers) blockIfNeeded(ctx context.Context, srv store.Server, err error) bool {
	var re *remote.Error
	waits := srv.Role == store.Neighbor || srv.Role == store.Node || w.Self != 0
	if !errors.As(err, &re) || !re.Blocking() || (waits && re.KeyRefused()) {
		return false
	}
	if berr := w.Store.BlockServer(ctx, srv.ID, printable.Line(err.Error())); berr != nil {
		w.Log.Error().Err(berr).Str("target", srv.Name).Msg("block server")
	}
	w.Syncer.Remote.CloseMasters(srv.Name)
	return true
}

// eligible reports whether syncs and checks go to srv now.
func (w *Workers) eligible(srv store.Server) bool {
	return srv.Eligible() && !w.isDown(srv.ID)
}
