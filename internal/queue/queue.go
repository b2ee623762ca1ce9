// Package queue is how a change to a repository reaches the replication
// queue: one write that marks the repository dirty for every replication
// target, then a wake-up for the workers. Pushes (cpm-hook), merges and
// LFS uploads all queue through it. When the database cannot be written,
// a marker file per repository under DATA/dirty stands in for the row,
// and the workers turn markers into rows later (Drain). cpm-hook runs on
// every push, so this package links nothing of ssh, rsync or the workers.
package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/wake"
)

// Enqueue marks the repository dirty for every replication target in one
// write and wakes the workers. It never fails the change that called it:
// without the database (st nil or failing) it leaves a marker file that
// the workers queue later.
func Enqueue(ctx context.Context, st *store.Store, dir datadir.Dir, repo names.RepoPath) {
	if st == nil || st.MarkDirty(ctx, repo.Org, repo.Repo) != nil {
		os.MkdirAll(dir.Dirty(), 0o700)
		if f, err := os.OpenFile(filepath.Join(dir.Dirty(), MarkerName(repo)), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Sync()
			f.Close()
		}
	}
	wake.Work(dir.WakeSocket())
}

// Drain queues the changes that could only be noted as markers in
// dirtyDir, removing each marker once its row is written (or once it is
// found to name no repository). A marker stays while the database is
// unavailable.
func Drain(ctx context.Context, st *store.Store, dirtyDir string) {
	if dirtyDir == "" {
		return
	}
	entries, err := os.ReadDir(dirtyDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rp, err := MarkerRepo(e.Name())
		if err != nil {
			os.Remove(filepath.Join(dirtyDir, e.Name()))
			continue
		}
		if err := st.MarkDirty(ctx, rp.Org, rp.Repo); err != nil && !errors.Is(err, store.ErrNotFound) {
			continue // the database is still unavailable; keep the marker
		}
		os.Remove(filepath.Join(dirtyDir, e.Name()))
	}
}

// MarkerName is the file name of a dirty marker for ORG/REPO.
func MarkerName(rp names.RepoPath) string { return rp.Org + "+" + rp.Repo }

// MarkerRepo parses a marker file name.
func MarkerRepo(name string) (names.RepoPath, error) {
	org, repo, ok := strings.Cut(name, "+")
	if !ok {
		return names.RepoPath{}, fmt.Errorf("bad marker %q", name)
	}
	return names.ParseRepoPath(org + "/" + repo)
}
