package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"cpm/internal/names"
)

// Space writes what the origin needs to know before it sends to its
// replica of ORG/REPO: the free KiB of the file system the replica is on,
// then "SIZE PATH" for each file under the replica's objects/ and
// lfs/objects/ (PATH relative to the replica), the form a backup's shell
// answers too. The origin holds a sync back when the room is short.
func (r *Receiver) Space(ctx context.Context, origin Origin, rp names.RepoPath, w io.Writer) error {
	_, dir, err := r.copyDir(ctx, origin, rp, false)
	if err != nil {
		return err
	}
	// A replica not prepared yet: the room is that of its nearest folder.
	at := dir
	for {
		if _, err := os.Stat(at); err == nil || filepath.Dir(at) == at {
			break
		}
		at = filepath.Dir(at)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(at, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", rp, err)
	}
	if _, err := fmt.Fprintf(w, "%d\n", st.Bavail*uint64(st.Bsize)/1024); err != nil {
		return err
	}
	for _, sub := range []string{"objects", "lfs/objects"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // gone meanwhile, or never there
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			_, err = fmt.Fprintf(w, "%d %s\n", info.Size(), filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			return fmt.Errorf("object files of %s: %w", rp, err)
		}
	}
	return nil
}
