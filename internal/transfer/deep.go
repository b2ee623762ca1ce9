package transfer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// Content checks. A replica's refs can match while its object files are
// damaged (bytes flipped, size and mtime kept, which rsync's quick check
// never sees) or gone (a lost pack, a deleted loose object, a truncated
// index). The quick check (Missing) finds files that are gone or differ
// in size; the deep check compares every file's content (rsync
// --checksum, a dry run: both sides read every object file once).

// Damage is what a check of a replica's object files found.
type Damage struct {
	Missing []string // object files the replica lacks
	Damaged []string // object files whose content (or size) differs
	// Examined is how many bytes of the source's object files were
	// compared (the replica's side reads as many).
	Examined int64
	Duration time.Duration
}

// OK reports whether the replica's object files are the source's.
func (d Damage) OK() bool { return len(d.Missing) == 0 && len(d.Damaged) == 0 }

// String is the finding in one line: "" when nothing is wrong.
func (d Damage) String() string {
	var parts []string
	if n := len(d.Damaged); n > 0 {
		parts = append(parts, fmt.Sprintf("%d damaged (%s)", n, firstOf(d.Damaged)))
	}
	if n := len(d.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing (%s)", n, firstOf(d.Missing)))
	}
	return strings.Join(parts, ", ")
}

// Cause names the worse of what was found, for the repairs metric.
func (d Damage) Cause() string {
	if len(d.Damaged) > 0 {
		return "damaged"
	}
	return "missing"
}

func firstOf(files []string) string {
	if len(files) == 1 {
		return files[0]
	}
	return files[0] + ", …"
}

// Check compares the object files of ORG/REPO's replica on t with the
// source's, Git LFS objects included: by name, size and mtime, or, deep,
// by content.
func (s *Syncer) Check(ctx context.Context, repo names.RepoPath, t remote.Target, deep bool) (Damage, error) {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return Damage{}, err
	}
	start := time.Now()
	args := []string{"--dry-run", "--itemize-changes"}
	if deep {
		args = append(args, "--checksum")
	}
	d, err := s.checkArea(ctx, repo, t, dir+"/objects/", areaObjects, "", append(excludes(), args...))
	if err == nil && hasLFS(dir) {
		var l Damage
		l, err = s.checkArea(ctx, repo, t, dir+"/lfs/", areaLFS, "lfs/", append(lfsObjectsOnly(), args...))
		d.Examined += l.Examined
		d.Missing, d.Damaged = append(d.Missing, l.Missing...), append(d.Damaged, l.Damaged...)
	}
	d.Duration = time.Since(start)
	return d, err
}

// checkArea is one dry run of Check; prefix names the area in paths.
func (s *Syncer) checkArea(ctx context.Context, repo names.RepoPath, t remote.Target, src string, a area, prefix string, args []string) (Damage, error) {
	r, err := s.push(ctx, t, repo, src, a, args...)
	if noRsync(err) {
		return Damage{}, fmt.Errorf("check %s on %s: the server has no rsync; install it there: %w", repo, t.Name, err)
	}
	if err != nil {
		return Damage{}, fmt.Errorf("check %s on %s: %w", repo, t.Name, err)
	}
	d := Damage{Examined: r.Examined}
	for _, c := range r.Changes {
		flags, path, _ := strings.Cut(c, " ")
		if len(flags) < 3 || flags[1] != 'f' {
			continue // directories, links
		}
		if strings.HasPrefix(flags[2:], "+++++++") {
			d.Missing = append(d.Missing, prefix+path)
		} else {
			d.Damaged = append(d.Damaged, prefix+path)
		}
	}
	return d, nil
}

// Repair sends the replica on t the source's object files again, packs
// before their indexes, comparing content when deep (so that a file of
// the right size and mtime but the wrong bytes is sent too), under the
// repository's lock; then it checks the replica again and returns what
// that found.
func (s *Syncer) Repair(ctx context.Context, repo names.RepoPath, t remote.Target, deep bool) (Damage, Result, error) {
	unlock, err := s.Lock(ctx, repo)
	if err != nil {
		return Damage{}, Result{}, err
	}
	defer unlock()
	return s.repairLocked(ctx, repo, t, deep)
}

// Healing is what CheckAndRepair did.
type Healing struct {
	Found    Damage // what the check found
	Repaired bool   // whether a repair ran
	After    Damage // what the check after the repair found
	Sent     Result // what the repair sent
}

// CheckAndRepair checks the replica and, if anything is missing or
// damaged and stillDone says the replica is still meant to be current,
// repairs it, all under the repository's lock, so that a repack in
// between cannot pass for damage.
func (s *Syncer) CheckAndRepair(ctx context.Context, repo names.RepoPath, t remote.Target, deep bool, stillDone func() bool) (Healing, error) {
	var h Healing
	unlock, err := s.Lock(ctx, repo)
	if err != nil {
		return h, err
	}
	defer unlock()
	if h.Found, err = s.Check(ctx, repo, t, deep); err != nil || h.Found.OK() || !stillDone() {
		return h, err
	}
	h.Repaired = true
	h.After, h.Sent, err = s.repairLocked(ctx, repo, t, deep)
	return h, err
}

func (s *Syncer) repairLocked(ctx context.Context, repo names.RepoPath, t remote.Target, deep bool) (Damage, Result, error) {
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return Damage{}, Result{}, err
	}
	var res Result
	extra := []string{}
	if deep {
		extra = append(extra, "--checksum")
	}
	type step struct {
		src  string
		a    area
		args []string
	}
	var steps []step
	for _, pass := range objectPasses() {
		steps = append(steps, step{dir + "/objects/", areaObjects, pass})
	}
	if hasLFS(dir) {
		// Damaged LFS objects are replaced too: no --ignore-existing.
		steps = append(steps, step{dir + "/lfs/", areaLFS, lfsObjectsOnly()})
	}
	for _, st := range steps {
		r, err := s.push(ctx, t, repo, st.src, st.a, append(st.args, extra...)...)
		res.Bytes += r.Bytes
		res.Files += r.Files
		if err != nil {
			return Damage{}, res, fmt.Errorf("repair %s on %s: %w", repo, t.Name, err)
		}
	}
	after, err := s.Check(ctx, repo, t, deep)
	return after, res, err
}
