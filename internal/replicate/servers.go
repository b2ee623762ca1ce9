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
// backoff, not blocked.
func (w *Workers) blockIfNeeded(ctx context.Context, srv store.Server, err error) bool {
	var re *remote.Error
	peer := srv.Role == store.Neighbor || srv.Role == store.Node
	if !errors.As(err, &re) || !re.Blocking() || (peer && re.KeyRefused()) {
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
