package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// Batched transfers. Each sync of a small repository costs a handful of
// ssh sessions and rsync runs whatever it sends; many small repositories
// bound for one backup therefore go together: the same steps as Sync, in
// the same order, each one rsync run over the whole batch (--files-from
// names each repository's part), then one ssh command reads back the
// refs of all of them. Every guarantee is the single sync's, per
// repository: it is locked and its refs snapshotted before anything is
// sent, its objects travel before its refs, and it succeeds only when
// the target's refs equal its snapshot. A repository whose part of a run
// failed (rsync names the file) is dropped from the later runs and
// fails alone; a run that failed without saying where (a lost
// connection) fails every repository still in it.

// MaxBatchRepoBytes is the largest repository (object files) that goes in
// a batch; larger ones are synced on their own, where progress and
// failures concern one repository.
const MaxBatchRepoBytes = 8 << 20

// BatchItem is one repository of a batched transfer and, after it, its
// outcome.
type BatchItem struct {
	Repo   names.RepoPath
	Result Result
	Err    error
	// Busy: another held the repository's lock or its replica's (a
	// handover, maintenance, a single sync) when the batch took its
	// locks; the batch left it out without waiting, so that it holds no
	// one up for its whole run, and it is to be synced alone (neither
	// Result nor Err is set).
	Busy bool
}

// Batchable reports whether repo may go in a batch to t: t is a backup
// reached with rsync, and repo is small and has no Git LFS objects.
func (s *Syncer) Batchable(repo names.RepoPath, t remote.Target) bool {
	if t.Peer || s.lacksRsync(t.Name) {
		return false
	}
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil || hasLFS(dir) {
		return false
	}
	size, err := toSend(dir, nil)
	return err == nil && size <= MaxBatchRepoBytes
}

// batchEntry is a BatchItem while the batch runs.
type batchEntry struct {
	*BatchItem
	dir    string
	snap   Snapshot
	unlock []func()
	failed bool
}

// rel is the repository's folder relative to the roots on either side.
func (e *batchEntry) rel() string { return e.Repo.Org + "/" + e.Repo.Repo + ".git" }

func (e *batchEntry) fail(err error) {
	if !e.failed {
		e.failed, e.Err = true, err
	}
}

// BatchTimes is where a batch's time went, for its log event.
type BatchTimes struct {
	Lock, Stage, Send, Verify time.Duration
}

// SyncBatch copies each item's repository to backup t and verifies it,
// filling in each item's Result or Err.
func (s *Syncer) SyncBatch(ctx context.Context, t remote.Target, items []*BatchItem) (times BatchTimes) {
	start := time.Now()
	lap := func(d *time.Duration) {
		*d = time.Since(start) - times.Lock - times.Stage - times.Send - times.Verify
	}
	entries := make([]*batchEntry, len(items))
	for i, it := range items {
		entries[i] = &batchEntry{BatchItem: it}
	}
	// One order for every batch's locks: two batches to two backups
	// never wait for each other's.
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel() < entries[j].rel() })
	defer func() {
		for _, e := range entries {
			for i := len(e.unlock) - 1; i >= 0; i-- {
				e.unlock[i]()
			}
		}
	}()
	work, err := os.MkdirTemp(s.TempDir, "batch-")
	if err != nil {
		failAll(entries, fmt.Errorf("snapshot: %w", err))
		return times
	}
	defer os.RemoveAll(work)
	live := 0
	for _, e := range entries {
		if err := s.lockEntry(t, e); err != nil {
			e.fail(err)
		}
		if !e.failed {
			live++
		}
	}
	lap(&times.Lock)
	if live == 0 {
		return times
	}
	s.stageAll(ctx, t, entries, work)
	lap(&times.Stage)
	if err := s.batchSpace(ctx, t, entries); err != nil {
		failAll(entries, err)
		return times
	}
	for _, st := range batchSteps(s, work) {
		if err := s.batchRun(ctx, t, entries, st, work); err != nil {
			failAll(entries, err)
			return times
		}
	}
	lap(&times.Send)
	s.verifyBatch(ctx, t, entries)
	lap(&times.Verify)
	for _, e := range entries {
		if !e.failed {
			e.Result.Fingerprint = e.snap.Fingerprint
			e.Result.Duration = time.Since(start)
		}
	}
	return times
}

// failAll fails every repository not failed yet.
func failAll(entries []*batchEntry, err error) {
	for _, e := range entries {
		e.fail(err)
	}
}

// lockEntry takes the locks of e's repository and of its replica on t,
// in that order (as a single sync does), without waiting: a lock another
// holds makes e Busy, left out of the batch with its locks released.
func (s *Syncer) lockEntry(t remote.Target, e *batchEntry) error {
	dir, err := s.Root.Open(e.Repo.Org, e.Repo.Repo)
	if err != nil {
		return err
	}
	e.dir = dir
	for _, path := range []string{s.repoLock(e.Repo), s.targetLock(e.Repo, t.Name)} {
		unlock, held, err := TryLockFile(path, false)
		if err != nil {
			return fmt.Errorf("lock %s for %s: %w", e.Repo, t.Name, err)
		}
		if !held {
			for i := len(e.unlock) - 1; i >= 0; i-- {
				e.unlock[i]()
			}
			e.unlock, e.failed, e.Busy = nil, true, true
			return nil
		}
		e.unlock = append(e.unlock, unlock)
	}
	return nil
}

// stagers is how many repositories a batch stages at once: each reads
// its ref files (or, when they do not settle its refs, runs git), mostly
// waiting on the disk.
const stagers = 4

// stageAll stages every locked repository of the batch, a few at once.
func (s *Syncer) stageAll(ctx context.Context, t remote.Target, entries []*batchEntry, work string) {
	next := make(chan *batchEntry)
	var wg sync.WaitGroup
	for range stagers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range next {
				if err := s.stage(ctx, t, e, work); err != nil {
					e.fail(err)
				}
			}
		}()
	}
	for _, e := range entries {
		if !e.failed {
			next <- e
		}
	}
	close(next)
	wg.Wait()
}

// stage takes the ref snapshot of e's repository, locked, and lays out,
// under work, its skeleton and its refs.
func (s *Syncer) stage(ctx context.Context, t remote.Target, e *batchEntry, work string) error {
	snap, ok := SnapshotFromFiles(e.dir)
	if !ok {
		var err error
		if snap, err = TakeSnapshot(ctx, e.dir); err != nil {
			return err
		}
	}
	e.snap = snap.Only(t.Refs)
	if err := e.snap.write(filepath.Join(work, "refs", e.rel())); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := writeSkeleton(filepath.Join(work, "skeleton", e.rel())); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// batchSpace holds the batch back unless backup t has room for every
// repository in it, whole, plus the margin; a batch that is short of room
// fails, and its repositories are then synced alone, each with its own
// precise check.
func (s *Syncer) batchSpace(ctx context.Context, t remote.Target, entries []*batchEntry) error {
	var whole int64
	var first *batchEntry
	for _, e := range entries {
		if e.failed {
			continue
		}
		n, err := toSend(e.dir, nil)
		if err != nil {
			return err
		}
		whole += n
		if first == nil {
			first = e
		}
	}
	if first == nil {
		return nil
	}
	need := whole + s.FreeMargin
	out, err := s.Remote.Run(ctx, t, spaceCommand(t, first.Repo, need/1024+1))
	if err != nil {
		return fmt.Errorf("free space on %s: %w", t.Name, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	var freeKiB int64
	if _, err := fmt.Sscan(strings.TrimSpace(line), &freeKiB); err != nil || freeKiB < 0 {
		return fmt.Errorf("free space on %s: not a number of KiB: %q", t.Name, line)
	}
	if freeKiB*1024 < need {
		return &DiskFullError{Free: freeKiB * 1024, Send: whole, Margin: s.FreeMargin}
	}
	return nil
}

// errBatchRun is a run that failed without naming the files it could not
// send: none of the repositories still in it can count on it.
var errBatchRun = errors.New("batched transfer")
