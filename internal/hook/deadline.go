package hook

import (
	"context"
	"time"
)

// DatabaseTimeout bounds a hook's opening of the database and its
// checks (the default lease; post-receive's record of the push waits up
// to RecordTimeout): a row held by a dead peer, or a database that stopped
// answering, must not hold the push past the time in which this node's
// lease would run out anyway. A post-receive step that gives up leaves
// a marker and warns the client, as with no database at all.
const DatabaseTimeout = 10 * time.Second

// RecordTimeout bounds post-receive's record of a push (MarkDirtyAs),
// which waits for the repository's row: an earlier push's replica
// writes hold it shared until they end, for up to a replica's
// sync_timeout plus 5 s (peer.Receiver's write bound). Giving up sooner
// would leave a push on a slow but live cluster unrecorded; a dead
// database connection ends sooner anyway (TCP keepalives).
const RecordTimeout = 60 * time.Second

// withDatabaseDeadline is ctx bounded by DatabaseTimeout.
func withDatabaseDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, DatabaseTimeout)
}
