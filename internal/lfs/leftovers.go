package lfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Leftover is a temporary file of an upload that never finished.
type Leftover struct {
	Path string
	Size int64
}

// tmpDir is where uploads to the objects under dir are written first.
func tmpDir(dir string) string { return filepath.Join(dir, "tmp") }

// Leftovers lists the temporary files of uploads to the repository at
// repoDir that nothing has written since cutoff. Put removes its file
// however the upload ends, so these are uploads whose server process died
// (kill -9, a crash, a forced command killed with its connection); a live
// upload writes to its file all the time.
func Leftovers(repoDir string, cutoff time.Time) ([]Leftover, error) {
	dir := tmpDir(ObjectsDir(repoDir))
	// Only real folders below the repository: a symbolic link there would
	// point the removal at files outside it.
	for p := dir; p != filepath.Clean(repoDir) && p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("list %s: %s is not a folder", dir, p)
		}
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []Leftover
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(cutoff) {
			continue
		}
		out = append(out, Leftover{Path: filepath.Join(dir, e.Name()), Size: fi.Size()})
	}
	return out, nil
}
