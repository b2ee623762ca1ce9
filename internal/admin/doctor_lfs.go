package admin

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"cpm/internal/lfs"
)

// checkLFSUploads reports the temporary files of Git LFS uploads cut off
// (their server died mid-way) that are older than age: maintenance
// removes them, so any found are waiting for it, or it does not run.
func (s *Service) checkLFSUploads(ctx context.Context, age time.Duration) []string {
	if age <= 0 {
		age = 24 * time.Hour
	}
	rs, err := s.Store.Repos(ctx, "")
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, r := range rs {
		dir, err := s.Disk.Open(r.Org, r.Name)
		if err != nil {
			continue // "repositories on disk" reports it
		}
		left, err := lfs.Leftovers(dir, time.Now().Add(-age))
		if err != nil {
			problems = append(problems, r.FullName()+": "+err.Error())
			continue
		}
		if len(left) == 0 {
			continue
		}
		var size int64
		for _, l := range left {
			size += l.Size
		}
		problems = append(problems, fmt.Sprintf("%s: %d temporary files (%.1f MiB) of cut-off uploads untouched for %s, such as %s",
			r.FullName(), len(left), float64(size)/(1<<20), age, filepath.Base(left[0].Path)))
	}
	return problems
}
