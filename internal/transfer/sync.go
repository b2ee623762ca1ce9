// Package transfer is the copy engine of replication: it copies one
// repository to one backup server or neighbour (or back, for a pull)
// with rsync over ssh, or tar where rsync is missing, so that a replica is
// never inconsistent even while pushes and repacks go on: refs are
// snapshotted first, objects are copied (packs before their indexes,
// never deleting), then the ref snapshot is shipped, and the target's
// refs are verified against it. It also checks and repairs replicas'
// content, delivers metadata (Publisher), and repacks and tidies the
// local repositories under the same per-repository lock. It decides
// nothing about when: the scheduler (internal/replicate) and on-demand
// syncs (internal/ondemand) call it.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/progress"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// Syncer copies one repository to one target.
type Syncer struct {
	mu      sync.Mutex
	noRsync map[string]bool // targets found without rsync
	// sent: the refs SendPack last left on a replica node, per
	// repository and node (packsend.go).
	sent map[string][]string

	Root    repos.Root
	Remote  remote.Env
	TempDir string // for ref snapshots
	LockDir string // per-repository locks, shared with maintenance
	// Progress, when set, is moved by rsync's --info=progress2 output.
	Progress *progress.Bar
	// FreeMargin is the room, in bytes, a backup keeps beyond what a
	// sync sends; with less, the sync waits (DiskFullError).
	FreeMargin int64
	// Sessions, when set, carries SendPack's fast path (session.go);
	// set before the syncer is shared.
	Sessions *Sessions
}

// Result describes a finished sync.
type Result struct {
	Fingerprint string
	Bytes       int64
	Files       int64
	Duration    time.Duration
	// Examined is the size of every source file rsync looked at (its
	// "Total file size"); Changes are its --itemize-changes lines, when
	// asked for.
	Examined int64
	Changes  []string
}

// SpeedKiB is the transfer rate in KiB/s.
func (r Result) SpeedKiB() float64 {
	return float64(r.Bytes) / max(r.Duration.Seconds(), 0.001) / 1024
}

// Summary is the seed's end-of-transfer line: files, bytes, duration, speed.
func (r Result) Summary() string {
	return fmt.Sprintf("%d files, %d bytes, %s, %.1f KiB/s", r.Files, r.Bytes, r.Duration.Round(time.Millisecond), r.SpeedKiB())
}

// Sync copies ORG/REPO to t and verifies the result. fresh creates the
// replica's folder and skeleton first; it is needed only until the target
// has a verified copy (each skipped step saves an ssh session).
func (s *Syncer) Sync(ctx context.Context, repo names.RepoPath, t remote.Target, fresh bool) (Result, error) {
	start := time.Now()
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	unlockTarget, err := s.lockTarget(ctx, repo, t.Name)
	if err != nil {
		return Result{}, err
	}
	defer unlockTarget()

	snap, work, err := s.stageSnapshot(ctx, dir, t.Refs)
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(work)
	refsDir, skelDir := filepath.Join(work, "refs"), filepath.Join(work, "skeleton")

	if fresh {
		if err := s.prepare(ctx, t, repo); err != nil {
			return Result{}, err
		}
	}
	if err := s.checkSpace(ctx, t, repo, dir); err != nil {
		return Result{}, err
	}
	job := copyJob{target: t, repo: repo, dir: dir, refsDir: refsDir, skelDir: skelDir, fresh: fresh, lfs: hasLFS(dir)}
	res, err := s.copierFor(t).copy(ctx, job)
	if s.fallBack(t, err) {
		// The target has no rsync: tar over the same ssh, from the top.
		job.fresh = true
		res, err = s.copierFor(t).copy(ctx, job)
	}
	// Whatever happens next, SendPack's fast path no longer knows what
	// this replica holds, unless the copy is verified whole.
	s.remember(repo, t.Name, nil)
	if err != nil {
		return res, err
	}
	if err := s.verifyCopy(ctx, repo, t, snap); err != nil {
		return res, err
	}
	res.Fingerprint = snap.Fingerprint
	res.Duration = time.Since(start)
	return res, nil
}

// stageSnapshot takes the snapshot of the repository at dir (only the
// refs a target takes, if it names some) and writes it, and the skeleton
// the copy starts from, to work/refs and work/skeleton in a new folder
// work, which the caller removes.
func (s *Syncer) stageSnapshot(ctx context.Context, dir string, refs []string) (Snapshot, string, error) {
	snap, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return Snapshot{}, "", err
	}
	snap = snap.Only(refs)
	work, err := os.MkdirTemp(s.TempDir, "snap-")
	if err != nil {
		return Snapshot{}, "", fmt.Errorf("snapshot: %w", err)
	}
	if err := snap.write(filepath.Join(work, "refs")); err != nil {
		os.RemoveAll(work)
		return Snapshot{}, "", fmt.Errorf("snapshot: %w", err)
	}
	if err := writeSkeleton(filepath.Join(work, "skeleton")); err != nil {
		os.RemoveAll(work)
		return Snapshot{}, "", fmt.Errorf("snapshot: %w", err)
	}
	return snap, work, nil
}

// verifyCopy checks that the target's refs are now the snapshot's, and
// then lets SendPack's fast path know what a peer's whole copy holds.
func (s *Syncer) verifyCopy(ctx context.Context, repo names.RepoPath, t remote.Target, snap Snapshot) error {
	got, err := RemoteFingerprint(ctx, s.Remote, t, repo)
	if err != nil {
		return err
	}
	if got != snap.Fingerprint {
		return ErrMismatch
	}
	if t.Peer && len(t.Refs) == 0 {
		s.remember(repo, t.Name, snap.Refs)
	}
	return nil
}

// ErrMismatch means the target's refs differ from what was shipped.
var ErrMismatch = errors.New("verification failed: the target's refs differ from the snapshot")

func gitOut(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return repos.GitOutput(ctx, dir, nil, args...)
}

func (s *Syncer) lacksRsync(target string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noRsync[target]
}

func (s *Syncer) markNoRsync(target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.noRsync == nil {
		s.noRsync = map[string]bool{}
	}
	s.noRsync[target] = true
}

// NewSyncer is a Syncer for the repositories of a data directory.
func NewSyncer(dir datadir.Dir, root repos.Root) *Syncer {
	return &Syncer{
		Root:       root,
		Remote:     remote.ForDataDir(dir),
		TempDir:    dir.Tmp(),
		LockDir:    dir.Locks(),
		FreeMargin: DefaultFreeMargin,
	}
}

// Missing counts the object files the replica on t lacks or holds with
// another size (Check, by name and size; nothing is copied).
func (s *Syncer) Missing(ctx context.Context, repo names.RepoPath, t remote.Target) (int64, error) {
	d, err := s.Check(ctx, repo, t, false)
	if noRsync(err) && !t.Peer {
		dir, err := s.Root.Open(repo.Org, repo.Repo)
		if err != nil {
			return 0, err
		}
		data, index, err := s.lackedObjects(ctx, t, filepath.Join(dir, "objects"), replicaPath(t, repo))
		return int64(len(data) + len(index)), err
	}
	return int64(len(d.Missing) + len(d.Damaged)), err
}
