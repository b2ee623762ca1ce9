package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cpm/internal/lfs"
	"cpm/internal/names"
	"cpm/internal/remote"
)

// Repacked is what one Repack did.
type Repacked struct {
	// Unchanged: nothing was written to the repository since its last
	// maintenance, so git was not run at all.
	Unchanged bool
	// Pushed: the repository changed since its last maintenance (a push,
	// a merge, a sync from elsewhere); false on the first maintenance
	// ever, when there is nothing to compare with.
	Pushed bool
	// Removed counts the packs and loose objects the repack made
	// redundant and removed (rolled into a bigger pack): replicas still
	// hold them until they are pruned. An index or bitmap that went
	// (a pack's bitmap once the multi-pack index has one) is not counted:
	// left on a replica it costs a few bytes and misleads no git.
	Removed int
}

// stampFile, in the repository's own directory (never synced: only
// objects/, refs and HEAD travel), holds the state the last maintenance
// left, so that a pass over many idle repositories runs no git at all.
const stampFile = "cpm-maintained"

// pruneOwedFile, beside stampFile, names (one a line) the targets whose
// replica may still hold files a repack removed here: a replica that was
// not current when its repository was repacked is pruned at a later pass,
// although the stamp makes that pass skip the repository otherwise.
const pruneOwedFile = "cpm-prune-owed"

// PruneOwed reads the targets repo's prune is owed to (none when the
// file is missing: the usual case, one failed open per repository).
func (s *Syncer) PruneOwed(repo names.RepoPath) ([]string, error) {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, pruneOwedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prunes owed of %s: %w", repo, err)
	}
	return strings.Fields(string(b)), nil
}

// SetPruneOwed records the targets repo's prune is owed to; none removes
// the record.
func (s *Syncer) SetPruneOwed(repo names.RepoPath, targets []string) error {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, pruneOwedFile)
	if len(targets) == 0 {
		err = os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	} else {
		err = os.WriteFile(path, []byte(strings.Join(targets, "\n")+"\n"), 0o600)
	}
	if err != nil {
		return fmt.Errorf("prunes owed of %s: %w", repo, err)
	}
	return nil
}

// Repack maintains ORG/REPO under its lock, as git's own gc would a bare
// repository, without ever rewriting big packs: a geometric repack (small
// packs roll into bigger ones; replicas receive only the new ones; -d
// removes what became redundant, loose objects included) with a
// multi-pack index and its reachability bitmap, so a clone does not count
// objects from scratch; an incremental commit-graph; packed refs. A
// repository whose objects and refs are as the last maintenance left them
// is not touched: a repack would only write the same files again.
func (s *Syncer) Repack(ctx context.Context, repo names.RepoPath) (Repacked, error) {
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return Repacked{}, err
	}
	defer unlock()
	before, err := readRepoState(dir)
	if err != nil {
		return Repacked{}, fmt.Errorf("maintain %s: %w", repo, err)
	}
	stamp, _ := os.ReadFile(filepath.Join(dir, stampFile))
	sum := before.sum()
	if string(stamp) == sum {
		return Repacked{Unchanged: true}, nil
	}
	res := Repacked{Pushed: len(stamp) > 0}
	steps := [][]string{
		{"repack", "-d", "-q", "--geometric=2", "--write-midx", "--write-bitmap-index"},
		{"commit-graph", "write", "--reachable", "--split", "--no-progress"},
	}
	if before.looseRefs {
		steps = append(steps, []string{"pack-refs", "--all", "--prune"})
	}
	for _, args := range steps {
		if _, err := gitOut(ctx, dir, args...); err != nil {
			return res, fmt.Errorf("maintain %s: git %s: %w", repo, args[0], err)
		}
	}
	after, err := readRepoState(dir)
	if err != nil {
		return res, fmt.Errorf("maintain %s: %w", repo, err)
	}
	res.Removed = before.movedObjects(after)
	// A write that lands between the repack and this line is in the
	// stamp, so it waits for the next change to be packed: a loose
	// object or ref left for one more interval, never a lost one.
	if err := os.WriteFile(filepath.Join(dir, stampFile), []byte(after.sum()), 0o600); err != nil {
		return res, fmt.Errorf("maintain %s: %w", repo, err)
	}
	return res, nil
}

// ErrNotCurrent means a target's refs are not the source's current refs,
// so pruning it could remove objects its own refs still need.
var ErrNotCurrent = errors.New("replica is not current; sync it first")

// PruneTarget removes from the replica on t the object files the source
// no longer has (old packs after a repack, loose objects since packed).
// It runs under the repository's lock, and only when the replica's refs
// equal the source's, which guarantees that everything they reach is in
// the source's objects; it verifies the replica again afterwards.
func (s *Syncer) PruneTarget(ctx context.Context, repo names.RepoPath, t remote.Target) (Result, error) {
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	// A SendPack's pack is among the replica's files that the source
	// lacks: none may land between the check and the deletion.
	unlockTarget, err := s.lockTarget(ctx, repo, t.Name)
	if err != nil {
		return Result{}, err
	}
	defer unlockTarget()
	snap, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return Result{}, err
	}
	if got, err := RemoteFingerprint(ctx, s.Remote, t, repo); err != nil {
		return Result{}, err
	} else if got != snap.Fingerprint {
		return Result{}, ErrNotCurrent
	}
	res, err := s.push(ctx, t, repo, dir+"/objects/", areaObjects, append(excludes(), "--delete-after")...)
	if err != nil {
		return res, err
	}
	if got, err := RemoteFingerprint(ctx, s.Remote, t, repo); err != nil {
		return res, err
	} else if got != snap.Fingerprint {
		return res, ErrMismatch
	}
	res.Fingerprint = snap.Fingerprint
	return res, nil
}

// Tidy removes what interrupted git processes leave in ORG/REPO and
// nothing ever removes, since cpm turns gc.auto off: the quarantine
// directories of pushes cut off mid-way (objects/tmp_objdir-incoming-*,
// objects/incoming-*), stale lock files (*.lock) and the temporary files
// of LFS uploads cut off (lfs/tmp), once nothing in them has changed for
// age, which must be far above the longest session a push can have. It
// returns the paths it removed and the bytes they held.
func (s *Syncer) Tidy(repo names.RepoPath, age time.Duration) (removed []string, bytes int64, err error) {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return nil, 0, err
	}
	cutoff := time.Now().Add(-age)
	// Quarantines: remove one only if no file in it is newer than cutoff.
	for _, pattern := range []string{"tmp_objdir-incoming-*", "incoming-*"} {
		found, _ := filepath.Glob(filepath.Join(dir, "objects", pattern))
		for _, q := range found {
			newest, size := newestIn(q)
			if newest.After(cutoff) {
				continue
			}
			if err := os.RemoveAll(q); err != nil {
				return removed, bytes, fmt.Errorf("tidy %s: %w", repo, err)
			}
			removed, bytes = append(removed, q), bytes+size
		}
	}
	uploads, err := lfs.Leftovers(dir, cutoff)
	if err != nil {
		return removed, bytes, fmt.Errorf("tidy %s: %w", repo, err)
	}
	for _, u := range uploads {
		if os.Remove(u.Path) == nil {
			removed, bytes = append(removed, u.Path), bytes+u.Size
		}
	}
	// Locks left by a git process that died holding them block every
	// later update of that ref or file.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), "tmp_objdir-") || d.Name() == "pack" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			removed, bytes = append(removed, p), bytes+fi.Size()
		}
		return nil
	})
	return removed, bytes, err
}

// newestIn is the latest modification time under dir and the bytes in it.
func newestIn(dir string) (time.Time, int64) {
	var newest time.Time
	var size int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
			if !d.IsDir() {
				size += fi.Size()
			}
		}
		return nil
	})
	return newest, size
}
