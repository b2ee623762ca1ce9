package transfer

import (
	"bufio"
	"compress/zlib"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// localRefs is what the ref files of a local repository say, read without
// git.
type localRefs struct {
	parts       *replicaParts
	headRaw     string            // HEAD as it is on disk
	peeled      map[string]string // packed-refs' "^ID" lines, by ref name
	fullyPeeled bool              // packed-refs says every tag in it is peeled
}

// readLocalRefs reads HEAD, packed-refs and the loose refs of the
// repository at dir; ok is false when the files do not settle its refs (a
// symbolic or malformed ref, a lock file, another ref storage).
func readLocalRefs(dir string) (l localRefs, ok bool) {
	if _, err := os.Stat(filepath.Join(dir, "reftable")); !errors.Is(err, fs.ErrNotExist) {
		return l, false
	}
	l.parts = &replicaParts{packed: map[string]string{}, loose: map[string]string{}}
	l.peeled = map[string]string{}
	last := ""
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
			text := sc.Text()
			switch {
			case name == "HEAD" && n == 1:
				l.headRaw = text + "\n"
			case name != "packed-refs":
			case strings.HasPrefix(text, "# pack-refs with:"):
				l.fullyPeeled = strings.Contains(text+" ", " fully-peeled ")
			case strings.HasPrefix(text, "^"):
				if id := text[1:]; isObjectID(id) && last != "" {
					l.peeled[last] = id
				} else {
					l.parts.unjudged = true
				}
			case !strings.HasPrefix(text, "#"):
				_, last, _ = strings.Cut(text, " ")
			}
			l.parts.refText(name, n, text)
		}
		return sc.Err() == nil
	}
	if !read("HEAD") || !read("packed-refs") {
		return l, false
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
	return l, err == nil && !l.parts.unjudged
}

// LocalFingerprint is the fingerprint of the refs of the repository at
// dir (limited to patterns), read from its ref files as a bulk answer's
// are, without starting git: a reconciliation pass needs only this of each
// repository. ok is false when the files do not settle it (a symbolic or
// malformed ref, another ref storage); the caller then asks git
// (TakeSnapshot).
func LocalFingerprint(dir string, patterns []string) (fp string, ok bool) {
	l, ok := readLocalRefs(dir)
	if !ok {
		return "", false
	}
	return FingerprintOnly(l.parts.showRef(), patterns), true
}

// SnapshotFromFiles is TakeSnapshot read from the ref files, for a
// repository already locked (so that they belong together). A snapshot
// ships peeled tags, so ok is also false unless every ref's peeled value
// is known: a packed ref's from a fully-peeled packed-refs, a loose ref's
// from its object, loose and not a tag. The caller then asks git.
func SnapshotFromFiles(dir string) (Snapshot, bool) {
	l, ok := readLocalRefs(dir)
	if !ok {
		return Snapshot{}, false
	}
	head := strings.TrimSpace(l.headRaw)
	if !strings.HasPrefix(head, "ref: refs/") && !isObjectID(head) {
		return Snapshot{}, false
	}
	s := Snapshot{Head: l.headRaw, Peeled: map[string]string{}}
	for name, id := range l.parts.packed {
		if _, shadowed := l.parts.loose[name]; shadowed {
			continue
		}
		if p, ok := l.peeled[name]; ok {
			s.Peeled[name] = p
		} else if !l.fullyPeeled {
			return Snapshot{}, false
		}
		s.Refs = append(s.Refs, id+" "+name)
	}
	for name, id := range l.parts.loose {
		if !looseNonTag(dir, id) {
			return Snapshot{}, false
		}
		s.Refs = append(s.Refs, id+" "+name)
	}
	sort.Slice(s.Refs, func(i, j int) bool {
		_, a, _ := strings.Cut(s.Refs[i], " ")
		_, b, _ := strings.Cut(s.Refs[j], " ")
		return a < b
	})
	s.Fingerprint = Fingerprint(l.parts.showRef())
	return s, true
}

// looseNonTag reports whether object id of the repository at dir is a
// loose object that is not a tag (a ref to it peels to nothing); a packed
// object, or one that cannot be read, is not known to be one.
func looseNonTag(dir, id string) bool {
	f, err := os.Open(filepath.Join(dir, "objects", id[:2], id[2:]))
	if err != nil {
		return false
	}
	defer f.Close()
	z, err := zlib.NewReader(f)
	if err != nil {
		return false
	}
	defer z.Close()
	var hdr [8]byte
	n, _ := io.ReadFull(z, hdr[:])
	kind, _, ok := strings.Cut(string(hdr[:n]), " ")
	return ok && (kind == "commit" || kind == "tree" || kind == "blob")
}
