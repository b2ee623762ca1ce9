package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cpm/internal/authz"
)

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
