// Package replicate copies repositories to backup servers and neighbours
// with rsync over ssh, so that a replica is never inconsistent even while
// pushes and repacks go on: refs are snapshotted first, objects are copied
// (packs before their indexes, never deleting), then the ref snapshot is
// shipped, and the target's refs are verified against it.
package replicate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cpm/internal/authz"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// Syncer copies one repository to one target.
type Syncer struct {
	mu      sync.Mutex
	noRsync map[string]bool // targets found without rsync

	Root    repos.Root
	Remote  remote.Env
	TempDir string // for ref snapshots
	LockDir string // per-repository locks, shared with maintenance
	// Progress, when set, receives rsync's --info=progress2 output.
	Progress *os.File
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

// Snapshot is a repository's refs at one moment.
type Snapshot struct {
	Head        string   // content of HEAD
	Refs        []string // "OBJECTID REFNAME", sorted by name
	Peeled      map[string]string
	Fingerprint string
}

// Fingerprint hashes sorted "OBJECTID NAME" lines, HEAD included, the form
// `git show-ref --head` prints on either side.
func Fingerprint(lines []string) string {
	s := append([]string(nil), lines...)
	sort.Strings(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\n")))
	return hex.EncodeToString(h[:])
}

// TakeSnapshot reads HEAD and every ref of the repository at dir in one
// git call, so that they belong together.
func TakeSnapshot(ctx context.Context, dir string) (Snapshot, error) {
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	out, err := gitOut(ctx, dir, "for-each-ref", "--format=%(objectname) %(refname) %(*objectname)")
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Head: string(head), Peeled: map[string]string{}}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		s.Refs = append(s.Refs, f[0]+" "+f[1])
		byName[f[1]] = f[0]
		if len(f) == 3 {
			s.Peeled[f[1]] = f[2]
		}
	}
	lines := append([]string(nil), s.Refs...)
	if target, ok := strings.CutPrefix(strings.TrimSpace(s.Head), "ref: "); ok {
		if id, ok := byName[target]; ok {
			lines = append(lines, id+" HEAD")
		}
	} else if h := strings.TrimSpace(s.Head); h != "" {
		lines = append(lines, h+" HEAD")
	}
	s.Fingerprint = Fingerprint(lines)
	return s, nil
}

// Only keeps the refs that match one of patterns (all of them when there
// are none). A limited snapshot's fingerprint covers exactly its refs,
// without HEAD, and so does the target's (FingerprintOnly).
func (s Snapshot) Only(patterns []string) Snapshot {
	if len(patterns) == 0 {
		return s
	}
	out := Snapshot{Head: s.Head, Peeled: map[string]string{}}
	for _, r := range s.Refs {
		name := strings.SplitN(r, " ", 2)[1]
		if authz.Protected(patterns, name) {
			out.Refs = append(out.Refs, r)
			if p, ok := s.Peeled[name]; ok {
				out.Peeled[name] = p
			}
		}
	}
	out.Fingerprint = FingerprintOnly(out.Refs, patterns)
	return out
}

// FingerprintOnly is the fingerprint of the "OBJECTID NAME" lines whose
// name matches one of patterns; with no patterns, of all of them.
func FingerprintOnly(lines []string, patterns []string) string {
	if len(patterns) == 0 {
		return Fingerprint(lines)
	}
	var keep []string
	for _, l := range lines {
		if _, name, ok := strings.Cut(l, " "); ok && authz.Protected(patterns, name) {
			keep = append(keep, l)
		}
	}
	return Fingerprint(keep)
}

// write lays the snapshot out as a repository's ref files: HEAD,
// packed-refs with every ref, and empty refs/ folders, so that shipping it
// with --delete-after replaces the target's refs wholesale.
func (s Snapshot) write(dir string) error {
	for _, d := range []string{"refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "HEAD"), []byte(s.Head), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
	for _, r := range s.Refs {
		b.WriteString(r + "\n")
		if p, ok := s.Peeled[strings.SplitN(r, " ", 2)[1]]; ok {
			b.WriteString("^" + p + "\n")
		}
	}
	return os.WriteFile(filepath.Join(dir, "packed-refs"), []byte(b.String()), 0o644)
}

// skeleton is what a replica needs before its first objects arrive; it is
// shipped with --ignore-existing and never overwrites the target's files.
func writeSkeleton(dir string) error {
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	cfg := "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n[gc]\n\tauto = 0\n"
	return os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644)
}

// excluded never travel: git's quarantine and temporary files, locks,
// hooks and config (each side owns its own).
var excluded = []string{"incoming-*", "tmp_*", "*.lock", ".rsync-partial"}

// Sync copies ORG/REPO to t and verifies the result. fresh creates the
// replica's folder and skeleton first; it is needed only until the target
// has a verified copy (each skipped step saves an ssh session).
func (s *Syncer) Sync(ctx context.Context, repo names.RepoPath, t remote.Target, fresh bool) (Result, error) {
	start := time.Now()
	dir, unlock, err := s.openLocked(repo)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	snap, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return Result{}, err
	}
	snap = snap.Only(t.Refs)
	work, err := os.MkdirTemp(s.TempDir, "snap-")
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	defer os.RemoveAll(work)
	refsDir, skelDir := filepath.Join(work, "refs"), filepath.Join(work, "skeleton")
	if err := snap.write(refsDir); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := writeSkeleton(skelDir); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}

	if fresh {
		if err := s.prepare(ctx, t, repo); err != nil {
			return Result{}, err
		}
	}
	var res Result
	steps := []struct {
		src     string
		objects bool
		args    []string
	}{
		{skelDir + "/", false, []string{"--ignore-existing"}},
		// Packs (and loose objects) before the indexes that make them
		// visible: a reader never finds an index whose pack is not there.
		{dir + "/objects/", true, objectPasses()[0]},
		{dir + "/objects/", true, objectPasses()[1]},
		// Then the refs, compared by checksum, replacing the target's.
		{refsDir + "/", false, []string{"--checksum", "--delete-after",
			"--include=/HEAD", "--include=/packed-refs", "--include=/refs/***", "--exclude=*"}},
	}
	// A neighbour lays its replica's foundations itself (prepare).
	if !fresh || t.Peer {
		steps = steps[1:]
	}
	if s.lacksRsync(t.Name) && !t.Peer {
		if res, err = s.tarSync(ctx, t, dir, refsDir, skelDir, replicaPath(t, repo), fresh); err != nil {
			return res, err
		}
	} else {
		for _, st := range steps {
			st2, err := s.push(ctx, t, repo, st.src, st.objects, st.args...)
			if noRsync(err) && !t.Peer {
				// The target has no rsync: tar over the same ssh, from the top.
				s.markNoRsync(t.Name)
				res, err = s.tarSync(ctx, t, dir, refsDir, skelDir, replicaPath(t, repo), true)
				if err != nil {
					return res, err
				}
				break
			}
			if err != nil {
				return res, err
			}
			res.Bytes += st2.Bytes
			res.Files += st2.Files
		}
	}
	got, err := RemoteFingerprint(ctx, s.Remote, t, repo)
	if err != nil {
		return res, err
	}
	if got != snap.Fingerprint {
		return res, ErrMismatch
	}
	res.Fingerprint = snap.Fingerprint
	res.Duration = time.Since(start)
	return res, nil
}

// ErrMismatch means the target's refs differ from what was shipped.
var ErrMismatch = errors.New("verification failed: the target's refs differ from the snapshot")

// indexFiles name the object files that make others visible: pack
// indexes, reverse indexes and bitmaps, the multi-pack index, and the
// commit-graph. They travel after the data they describe, so that a
// reader of a replica never finds an index whose pack is not there yet.
var indexFiles = []string{"*.idx", "*.bitmap", "*.rev", "multi-pack-index", "commit-graph", "commit-graph-chain", "commit-graphs"}

// isIndexFile reports whether the object file named name is one of them.
func isIndexFile(name string) bool {
	for _, pat := range indexFiles {
		if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
	}
	return strings.HasPrefix(name, "multi-pack-index-") || strings.HasPrefix(name, "graph-")
}

// objectPasses are rsync's filters for the two passes over objects/:
// data first, then the index files too.
func objectPasses() [][]string {
	first := append(excludes(), "--exclude=*.keep")
	for _, pat := range indexFiles {
		first = append(first, "--exclude="+pat)
	}
	first = append(first, "--exclude=multi-pack-index-*")
	return [][]string{first, append(excludes(), "--exclude=*.keep")}
}

func excludes() []string {
	var a []string
	for _, e := range excluded {
		a = append(a, "--exclude="+e)
	}
	return a
}

var (
	statsRe    = regexp.MustCompile(`(?m)^Total bytes (?:sent|received): ([\d,.]+)|^Number of regular files transferred: ([\d,.]+)`)
	examinedRe = regexp.MustCompile(`(?m)^Total file size: ([\d,.]+)`)
	// An --itemize-changes line: YXcstpoguax, a space, the path.
	itemizeRe = regexp.MustCompile(`(?m)^([<>ch.*][fdLDS][.+?cstpoguaxn]{9}) (.+)$`)
)

// rsyncArgs runs rsync with cpm's options, then tail (filters and paths).
func (s *Syncer) rsyncArgs(ctx context.Context, t remote.Target, tail []string) (Result, error) {
	args := []string{"-rlpt", "--partial-dir=.rsync-partial", "--stats", "--timeout=300", "-e", s.Remote.RsyncShell(t)}
	if !t.Peer {
		args = append(args, "--rsync-path="+remote.Fence(t, "rsync"))
	}
	if t.BWLimit > 0 {
		args = append(args, "--bwlimit="+strconv.Itoa(t.BWLimit))
	}
	if t.Compress > 0 {
		args = append(args, "--compress", "--compress-level="+strconv.Itoa(t.Compress))
	}
	if s.Progress != nil {
		args = append(args, "--info=progress2")
	}
	args = append(args, tail...)
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if s.Progress != nil {
		cmd.Stderr = &teeWriter{&stderr, s.Progress}
		cmd.Stdout = &teeWriter{&stdout, s.Progress}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return Result{}, &remote.Error{Op: "rsync to " + t.Name, Code: code, Stderr: stderr.String()}
	}
	var r Result
	number := func(s string) int64 {
		n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(s), 10, 64)
		return n
	}
	for _, m := range statsRe.FindAllStringSubmatch(stdout.String(), -1) {
		if m[1] != "" {
			r.Bytes += number(m[1]) // both directions: the bytes on the wire
		} else {
			r.Files = number(m[2])
		}
	}
	if m := examinedRe.FindStringSubmatch(stdout.String()); m != nil {
		r.Examined = number(m[1])
	}
	for _, m := range itemizeRe.FindAllStringSubmatch(stdout.String(), -1) {
		r.Changes = append(r.Changes, m[1]+" "+m[2])
	}
	return r, nil
}

type teeWriter struct {
	a *bytes.Buffer
	b *os.File
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	t.b.Write(p)
	return len(p), nil
}

// openLocked opens ORG/REPO and takes its lock; callers defer unlock.
func (s *Syncer) openLocked(repo names.RepoPath) (dir string, unlock func(), err error) {
	if dir, err = s.Root.Open(repo.Org, repo.Repo); err != nil {
		return "", nil, err
	}
	if unlock, err = s.lock(repo); err != nil {
		return "", nil, err
	}
	return dir, unlock, nil
}

// lock takes the repository's lock, which maintenance (repack) takes too,
// so that a sync never copies a repository in the middle of a repack.
func (s *Syncer) lock(repo names.RepoPath) (func(), error) {
	return LockFile(filepath.Join(s.LockDir, repo.Org, repo.Repo+".lock"))
}

// LockFile takes an exclusive lock on the file at path (created, 0600,
// with its folder), waiting for it; the lock holds across processes.
func LockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

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
		Root:    root,
		Remote:  remote.Env{Key: dir.ReplicationKey(), NextKey: dir.NextReplicationKey(), KnownHosts: dir.KnownHosts(), ControlDir: dir.Control()},
		TempDir: dir.Tmp(),
		LockDir: dir.Locks(),
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
