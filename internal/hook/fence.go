package hook

import (
	"context"
	"errors"
	"fmt"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
)

// CheckFence refuses a push that this node may not accept now (pre-
// receive): on a cluster node whose lease ran out by the database's
// clock, or that is no longer the repository's primary under the epoch
// the session started with. Outside a cluster every push may.
func CheckFence(ctx context.Context, st *store.Store, dir datadir.Dir, repo names.RepoPath, getenv func(string) string) error {
	w, err := WriterOf(ctx, st, dir, repo, getenv)
	if err != nil {
		return fmt.Errorf("%s: who takes this push: %w", repo, err)
	}
	err = st.CheckWriter(ctx, repo.Org, repo.Repo, w)
	switch {
	case errors.Is(err, store.ErrFenced):
		return store.ErrFenced
	case errors.Is(err, store.ErrNotPrimary):
		return fmt.Errorf("%s moved to another node; try again", repo)
	case err != nil:
		return fmt.Errorf("%s: check this node's lease: %w", repo, err)
	}
	return nil
}
