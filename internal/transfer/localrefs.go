package transfer

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LocalFingerprint is the fingerprint of the refs of the repository at
// dir (limited to patterns), read from its ref files as a bulk answer's
// are, without starting git: a reconciliation pass needs only this of each
// repository. ok is false when the files do not settle it (a symbolic or
// malformed ref, another ref storage); the caller then asks git
// (TakeSnapshot). It is never used to ship refs: a snapshot's peeled tags
// need git.
func LocalFingerprint(dir string, patterns []string) (fp string, ok bool) {
	if _, err := os.Stat(filepath.Join(dir, "reftable")); !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	p := &replicaParts{packed: map[string]string{}, loose: map[string]string{}}
	read := func(name string) bool {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) && name == "packed-refs" {
			return true
		}
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			p.refText(name, n, sc.Text())
		}
		return sc.Err() == nil
	}
	if !read("HEAD") || !read("packed-refs") {
		return "", false
	}
	err := filepath.WalkDir(filepath.Join(dir, "refs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || strings.HasSuffix(rel, ".lock") || !read(filepath.ToSlash(rel)) {
			return errors.New("unreadable ref")
		}
		return nil
	})
	if err != nil || p.unjudged {
		return "", false
	}
	return FingerprintOnly(p.showRef(), patterns), true
}
