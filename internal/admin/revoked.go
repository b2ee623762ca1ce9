package admin

import (
	"context"
	"fmt"
)

// revoked is where every command that can take access away goes after
// its change (err: the change's outcome). On PostgreSQL a serving node
// answers who a key is and what a user may do from a cache; the command
// returns only once no node can answer from a cache older than its
// change (store.WaitAuthApplied: at most the confirm window and a margin,
// even with a node that never acknowledges), so the next connection
// anywhere is decided on the new facts. On SQLite nothing caches.
func (s *Service) revoked(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	if err := s.Store.WaitAuthApplied(ctx); err != nil {
		return fmt.Errorf("the change is made, but the nodes' caches could not be confirmed to drop it: %w", err)
	}
	return nil
}
