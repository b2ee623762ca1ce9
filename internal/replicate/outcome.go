package replicate

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/printable"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// finish records the outcome of j's sync (one of batch, when that is not
// 0): done, or failed and retried.
func (w *Workers) finish(ctx context.Context, j store.Job, srv store.Server, start time.Time, repoGen int64, res transfer.Result, err error, batch int) {
	ev := Event{Repo: j.Repo, Target: j.Server, Duration: time.Since(start), Bytes: res.Bytes}
	lc := w.Log.With().Str("repo", j.Repo).Str("target", j.Server).Int64("duration_ms", ev.Duration.Milliseconds())
	if batch > 0 {
		lc = lc.Int("batch", batch)
	}
	log := lc.Logger()
	w.trip(j.ServerID, err)
	if err == nil {
		ev.OK = true
		ev.Lag = j.Lag(time.Now())
		if derr := w.Store.Done(ctx, j, j.Generation, repoGen, res.Fingerprint, res.Bytes); derr != nil {
			log.Error().Err(derr).Msg("record sync")
		}
		log.Info().Int64("bytes", res.Bytes).Int64("files", res.Files).Float64("speed_kib_s", res.SpeedKiB()).
			Int64("lag_ms", ev.Lag.Milliseconds()).Str("fingerprint", res.Fingerprint[:12]).Msg("sync")
	} else if ctx.Err() != nil {
		// Shutting down: leave the lease to run out; the job runs again.
		return
	} else {
		ev.Cause, ev.Blocked = w.failed(ctx, j, srv, err, log)
	}
	if w.Observe != nil {
		w.Observe(ev)
	}
}

// failed records a failed sync: blocked if retrying cannot mend it,
// otherwise retried after a backoff. It returns the cause and whether
// the server is now blocked.
func (w *Workers) failed(ctx context.Context, j store.Job, srv store.Server, err error, log zerolog.Logger) (string, bool) {
	blocked := w.blockIfNeeded(ctx, srv, err)
	c := cause(err)
	retry := time.Now().Add(w.backoff(j.Attempts))
	if c == "partial" {
		// rsync 23/24: files changed or vanished under it (a push or a
		// repack): try again soon, not after a long backoff.
		retry = time.Now().Add(w.backoff(0))
	}
	if ferr := w.Store.Failed(ctx, j, printable.Line(err.Error()), retry, blocked); ferr != nil {
		log.Error().Err(ferr).Msg("record failed sync")
	}
	log.Warn().Err(err).Str("cause", c).Bool("blocked", blocked).Int("attempts", j.Attempts+1).
		Time("retry_at", retry).Msg("sync failed")
	return c, blocked
}
