package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// DefaultFreeMargin is the room a backup keeps beyond what a sync sends
// (the free_space_margin setting).
const DefaultFreeMargin = 64 << 20

// DiskFullError holds a sync back before it starts: the target has less
// free space than the transfer needs plus the margin. A copy that ran out
// of room midway would leave partial files and fail; this waits, with
// the sync backoff, until an operator frees space.
type DiskFullError struct {
	Free, Send, Margin int64 // bytes
}

func (e *DiskFullError) Error() string {
	const mib = 1 << 20
	up := func(n int64) int64 { return (n + mib - 1) / mib }
	return fmt.Sprintf("disk full: %d MiB free, needs %d MiB (%d to send, a margin of %d)",
		e.Free/mib, up(e.Send+e.Margin), up(e.Send), up(e.Margin))
}

// checkSpace holds a sync to t back when the replica's file system has
// less room than the object files (and LFS objects) that t lacks, or
// holds with another size, plus s.FreeMargin. A backup is asked with
// POSIX tools only (df -P, find, ls -n), so that it works where rsync is
// missing too; a neighbour with cpm-peer space.
func (s *Syncer) checkSpace(ctx context.Context, t remote.Target, repo names.RepoPath, dir string) error {
	whole, err := toSend(dir, nil)
	if err != nil {
		return err
	}
	// Room for the whole repository ends the check: the listing, which
	// grows with the replica, is read only when space is short.
	out, err := s.Remote.Run(ctx, t, spaceCommand(t, repo, (whole+s.FreeMargin)/1024))
	var re *remote.Error
	if t.Peer && errors.As(err, &re) && strings.Contains(re.Stderr, "unknown cpm-peer subcommand") {
		return nil // a neighbour of an older version: it cannot tell
	}
	if err != nil {
		return fmt.Errorf("free space on %s: %w", t.Name, err)
	}
	first, listing, _ := strings.Cut(string(out), "\n")
	freeKiB, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil || freeKiB < 0 || freeKiB > math.MaxInt64/1024 {
		return fmt.Errorf("free space on %s: not a number of KiB: %q", t.Name, first)
	}
	free := freeKiB * 1024
	if free >= whole+s.FreeMargin {
		return nil
	}
	send, err := toSend(dir, parseListing(listing))
	if err != nil {
		return err
	}
	if free < send+s.FreeMargin {
		return &DiskFullError{Free: free, Send: send, Margin: s.FreeMargin}
	}
	return nil
}

// spaceCommand asks t for the free KiB where the replica of repo lives,
// then, when that is less than needKiB, "SIZE PATH" for each of its
// object files, PATH relative to the replica (objects/…, lfs/objects/…).
// A neighbour always lists them (cpm-peer space takes no size).
func spaceCommand(t remote.Target, repo names.RepoPath, needKiB int64) string {
	if t.Peer {
		return "cpm-peer space " + repo.String()
	}
	q := shellquote.Quote
	// ls -n: MODE LINKS UID GID SIZE MONTH DAY TIME|YEAR PATH, and
	// object paths hold no spaces.
	return "mkdir -p " + q(t.Path) + " && free=$(df -Pk " + q(t.Path) + " | awk 'NR==2 {print $4}') && echo \"$free\" && " +
		"{ [ \"$free\" -ge " + strconv.FormatInt(needKiB, 10) + " ] 2>/dev/null || " +
		"{ cd " + q(replicaPath(t, repo)) + " 2>/dev/null && LC_ALL=C find objects lfs/objects -type f -exec ls -ln {} + 2>/dev/null | awk '{print $5, $NF}'; }; true; }"
}

// parseListing reads "SIZE PATH" lines into sizes by path.
func parseListing(listing string) map[string]int64 {
	have := map[string]int64{}
	for _, l := range strings.Split(listing, "\n") {
		size, path, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(size, 10, 64); err == nil {
			have[path] = n
		}
	}
	return have
}

// toSend sums the sizes of the object files and LFS objects of the
// repository at dir that have, taken by path, no file of the same size
// in have: what a sync writes on the target at most.
func toSend(dir string, have map[string]int64) (int64, error) {
	sum, _, err := lacking(dir, have)
	return sum, err
}

// lacking is toSend with the number of such files too (a file of size 0
// counts there, not in the sum).
func lacking(dir string, have map[string]int64) (sum int64, files int, err error) {
	for _, sub := range []string{"objects", "lfs/objects"} {
		err := eachObjectFile(filepath.Join(dir, sub), func(rel string, d fs.DirEntry) error {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if n, ok := have[sub+"/"+rel]; !ok || n != info.Size() {
				sum += info.Size()
				files++
			}
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("size of %s: %w", sub, err)
		}
	}
	return sum, files, nil
}
