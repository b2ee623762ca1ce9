package replicate

import (
	"context"

	"cpm/internal/store"
)

// publish delivers the current metadata to every server that lacks it
// and is reachable as far as the circuit breaker knows. Nodes of the
// cluster get none: they read the same database.
func (w *Workers) publish(ctx context.Context) {
	gen, err := w.Store.MetaGeneration(ctx)
	if err != nil {
		return
	}
	servers, err := w.Store.Servers(ctx)
	if err != nil {
		return
	}
	for _, srv := range servers {
		if srv.Role == store.Node || srv.MetaGeneration >= gen || !w.eligible(srv) || w.metaWaits(srv.ID) {
			continue
		}
		d, err := w.Publisher.Ensure(ctx, srv)
		if ctx.Err() != nil {
			return
		}
		w.trip(srv.ID, err)
		retry := w.metaTrip(srv.ID, err)
		log := w.Log.With().Str("target", srv.Name).Str("kind", d.Kind).Int64("generation", d.Generation).Logger()
		if err != nil {
			if w.Observe != nil {
				w.Observe(Event{Target: srv.Name, Metadata: true, Cause: "metadata"})
			}
			blocked := w.blockIfNeeded(ctx, srv, err)
			log.Warn().Err(err).Str("cause", cause(err)).Bool("blocked", blocked).Time("retry_at", retry).Msg("deliver metadata")
			continue
		}
		if d.Kind != "" {
			log.Info().Int64("bytes", d.Bytes).Int64("duration_ms", d.Duration.Milliseconds()).Msg("deliver metadata")
		}
	}
}
