package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// repoState is what a repository's maintenance depends on: its object
// files and its refs, each with size and modification time. Reading it
// costs a walk of objects/ and refs/, no git process.
type repoState struct {
	objects   map[string]string // path under the repository → size and mtime
	refs      []string          // refs/ entries, packed-refs: path, size and mtime
	looseRefs bool              // a ref file under refs/, for pack-refs
}

// readRepoState reads dir's repoState. objects/info is left out: the
// commit-graph written there changes nothing a replica lacks.
func readRepoState(dir string) (repoState, error) {
	st := repoState{objects: map[string]string{}}
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a loose-object folder removed meanwhile
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == filepath.Join("objects", "info") || strings.HasPrefix(d.Name(), "tmp_objdir-") || strings.HasPrefix(d.Name(), "incoming-") {
				return filepath.SkipDir
			}
			return nil
		}
		if fi, err := d.Info(); err == nil {
			st.objects[rel] = stamp(fi)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read objects: %w", err)
	}
	err = filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		// A folder's mtime moves when a ref is created or removed in it.
		st.refs = append(st.refs, rel+" "+stamp(fi))
		if !d.IsDir() {
			st.looseRefs = true
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read refs: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "packed-refs")); err == nil {
		st.refs = append(st.refs, "packed-refs "+stamp(fi))
	}
	return st, nil
}

func stamp(fi fs.FileInfo) string {
	return fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
}

// sum is one line that changes whenever the state does.
func (st repoState) sum() string {
	lines := make([]string, 0, len(st.objects)+len(st.refs))
	for p, s := range st.objects {
		lines = append(lines, p+" "+s)
	}
	slices.Sort(lines)
	lines = append(lines, st.refs...)
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h[:])
}

// movedObjects counts the packs and loose objects of st that are gone
// in after.
func (st repoState) movedObjects(after repoState) int {
	n := 0
	for f := range st.objects {
		if _, ok := after.objects[f]; ok {
			continue
		}
		dir, name := filepath.Split(filepath.ToSlash(f))
		if strings.HasSuffix(name, ".pack") || len(dir) == len("objects/xx/") && dir != "objects/pack/" {
			n++
		}
	}
	return n
}
