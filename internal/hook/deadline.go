package hook

import (
	"context"
	"time"
)

// DatabaseTimeout bounds each database step of a hook (the default
// lease): a row held by a dead peer, or a database that stopped
// answering, must not hold the push past the time in which this node's
// lease would run out anyway. A post-receive step that gives up leaves
// a marker and warns the client, as with no database at all.
const DatabaseTimeout = 10 * time.Second

// withDatabaseDeadline is ctx bounded by DatabaseTimeout.
func withDatabaseDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, DatabaseTimeout)
}
