package authcache

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/store"
)

// roundTrip and confirmTimeout: see store.AuthRoundTrip; a waiter counts
// on them to tell a live listener from a dead one.
const (
	roundTrip      = store.AuthRoundTrip
	confirmTimeout = store.AuthConfirmTimeout
)

// retry is the pause before reconnecting a lost listen connection.
const retry = time.Second

// Listen keeps c in step with the database until ctx ends: it listens
// for the store's change notifications on a connection of its own,
// empties c on each and acknowledges it under name, and proves the
// connection current at least every second. While the connection is
// down c is empty and not current, so every read goes to the database.
func Listen(ctx context.Context, st *store.Store, c *Cache, name string, log zerolog.Logger) {
	listen(ctx, st, c, name, log, func() {})
}

// listen is Listen calling held after each notification, before the
// listener acts on it: the package's tests hold a listener back there to
// check that a waiter does not return before it acknowledges, and that
// its cache stops answering meanwhile.
func listen(ctx context.Context, st *store.Store, c *Cache, name string, log zerolog.Logger, held func()) {
	warned := false // one warning per outage, not one a second
	for ctx.Err() == nil {
		confirmed, err := listenOnce(ctx, st, c, name, held)
		c.Lost()
		if ctx.Err() != nil {
			return
		}
		if confirmed || !warned {
			log.Warn().Err(err).Msg("authentication cache off: lost its database listener; reading the database until it is back")
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// listenOnce runs one listen connection until it fails, and reports
// whether it ever made the cache current.
func listenOnce(ctx context.Context, st *store.Store, c *Cache, name string, held func()) (confirmed bool, err error) {
	l, err := st.ListenAuth(ctx, name)
	if err != nil {
		return false, err
	}
	// The cache stops answering before the row goes: a waiter that no
	// longer sees this listener must find it answering from the database.
	defer func() { c.Lost(); l.Close() }()
	// Changes before LISTEN went unheard: start empty.
	c.Invalidate()
	var applied int64
	for {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, confirmTimeout)
		current, err := l.Confirm(cctx, applied)
		cancel()
		if err != nil {
			return confirmed, err
		}
		confirmed = true
		if current != applied {
			// Changes this listener has not emptied the cache for (or,
			// right after connecting, any): empty it, acknowledge at once.
			c.Invalidate()
			applied = current
			c.Confirm(start)
			continue
		}
		c.Confirm(start)
		notified, err := l.Wait(ctx, roundTrip)
		if err != nil {
			return confirmed, err
		}
		if notified {
			held()
			c.Invalidate()
		}
	}
}
