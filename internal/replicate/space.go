package replicate

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"cpm/internal/names"
	"cpm/internal/remote"
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

// checkSpace holds a sync to backup t back when the replica's file
// system has less room than the object files (and LFS objects) that t
// lacks, or holds with another size, plus s.FreeMargin. It asks t with
// POSIX tools only (df -P, find, ls -n), so it works where rsync is
// missing too. A neighbour is a cpm node that guards its own disk.
func (s *Syncer) checkSpace(ctx context.Context, t remote.Target, repo names.RepoPath, dir string) error {
	if t.Peer {
		return nil
	}
	q := remote.Quote
	out, err := s.Remote.Run(ctx, t, "mkdir -p "+q(t.Path)+" && df -Pk "+q(t.Path)+" | awk 'NR==2 {print $4}' && "+
		"{ cd "+q(replicaPath(t, repo))+" 2>/dev/null && LC_ALL=C find objects lfs/objects -type f -exec ls -ln {} + 2>/dev/null; true; }")
	if err != nil {
		return err
	}
	first, listing, _ := strings.Cut(string(out), "\n")
	freeKiB, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil {
		return fmt.Errorf("free space on %s: df printed %q", t.Name, first)
	}
	send, err := toSend(dir, parseListing(listing))
	if err != nil {
		return err
	}
	if free := freeKiB * 1024; free < send+s.FreeMargin {
		return &DiskFullError{Free: free, Send: send, Margin: s.FreeMargin}
	}
	return nil
}

// parseListing reads `ls -ln` lines into sizes by path.
func parseListing(listing string) map[string]int64 {
	have := map[string]int64{}
	for _, l := range strings.Split(listing, "\n") {
		// MODE LINKS UID GID SIZE MONTH DAY TIME|YEAR PATH: object paths
		// hold no spaces.
		f := strings.Fields(l)
		if len(f) < 9 {
			continue
		}
		if n, err := strconv.ParseInt(f[4], 10, 64); err == nil {
			have[f[len(f)-1]] = n
		}
	}
	return have
}

// toSend sums the sizes of the object files and LFS objects of the
// repository at dir that have, taken by path, no file of the same size
// in have: what a sync writes on the target at most.
func toSend(dir string, have map[string]int64) (int64, error) {
	var sum int64
	for _, sub := range []string{"objects", "lfs/objects"} {
		err := eachObjectFile(filepath.Join(dir, sub), func(rel string, d fs.DirEntry) error {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if n, ok := have[sub+"/"+rel]; !ok || n != info.Size() {
				sum += info.Size()
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("size of %s: %w", sub, err)
		}
	}
	return sum, nil
}
