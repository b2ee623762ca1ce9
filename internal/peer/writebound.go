package peer

import (
	"context"
	"time"
)

// defaultWriteTimeout bounds a synchronous write when the receiver was
// given no WriteTimeout: the default sync_timeout (10 s) and 5 s more.
const defaultWriteTimeout = 15 * time.Second

// boundWrite is ctx ended after the receiver's write timeout. A
// synchronous write holds the repository's row shared (elections and
// the primary's next push wait for it) and runs git receive-pack fed by
// the primary: a primary that lost power mid-send would otherwise leave
// both until the ssh idle timeout. The primary gives up after its
// sync_timeout anyway, so a write that runs longer is wasted.
func (r *Receiver) boundWrite(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.writeTimeout())
}

// writeTimeout is the bound of one synchronous write.
func (r *Receiver) writeTimeout() time.Duration {
	if r.WriteTimeout <= 0 {
		return defaultWriteTimeout
	}
	return r.WriteTimeout
}

// WriteTimeoutFor is the write timeout for a node whose pushes wait
// syncTimeout for their replicas: a primary's send-pack may still be
// finishing when its own wait ends, so 5 s more.
func WriteTimeoutFor(syncTimeout time.Duration) time.Duration {
	return syncTimeout + 5*time.Second
}
