package admin

import (
	"context"
	"fmt"
)

// takesEffect is where every command that changes who a key is or what
// a user may do goes after its change (err: the change's outcome). On
// PostgreSQL a serving node answers those questions from a cache
// (internal/authcache); the command returns only once no node can answer
// from a cache older than its change (store.WaitAuthApplied: at once
// when every node acknowledged, at most the confirm window and a margin
// when one does not), so the next connection anywhere is decided on the
// new facts: a removed key is refused, a new one let in. On SQLite
// nothing caches and it returns at once.
func (s *Service) takesEffect(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	if err := s.Store.WaitAuthApplied(ctx); err != nil {
		return fmt.Errorf("the change is made, but the nodes' caches could not be confirmed to drop it: %w", err)
	}
	return nil
}
