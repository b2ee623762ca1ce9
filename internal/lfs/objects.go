package lfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

// oidRe is an LFS object id: SHA-256 in lower-case hex.
var oidRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidOID reports whether s is an LFS object id.
func ValidOID(s string) bool { return oidRe.MatchString(s) }

var (
	// ErrTooLarge is an object over the size limit.
	ErrTooLarge = errors.New("object too large")
	// ErrCorrupt is an upload whose content does not match its id or size.
	ErrCorrupt = errors.New("corrupt object")
)

// Objects is one repository's LFS objects, stored by content under Dir
// (the repository's lfs/ folder) as objects/AB/CD/OID, as git-lfs lays
// out its own store.
type Objects struct {
	Dir     string
	MaxSize int64 // bytes; 0 means no limit
}

// ObjectsDir is where the repository at repoDir keeps its LFS objects.
func ObjectsDir(repoDir string) string { return filepath.Join(repoDir, "lfs") }

func (o Objects) path(oid string) string {
	return filepath.Join(o.Dir, "objects", oid[0:2], oid[2:4], oid)
}

// Size returns the stored object's size; ok is false when it is not
// stored.
func (o Objects) Size(oid string) (size int64, ok bool, err error) {
	if !ValidOID(oid) {
		return 0, false, nil
	}
	fi, err := os.Stat(o.path(oid))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return fi.Size(), true, nil
}

// Open opens a stored object for reading.
func (o Objects) Open(oid string) (*os.File, error) {
	if !ValidOID(oid) {
		return nil, os.ErrNotExist
	}
	return os.Open(o.path(oid))
}

// fits refuses an object over the size limit, before any of it is read.
func (o Objects) fits(oid string, size int64) error {
	if o.MaxSize > 0 && size > o.MaxSize {
		return refusal(ErrTooLarge, "object %s is %d bytes, over this server's limit of %d (lfs_max_object_size)", oid, size, o.MaxSize)
	}
	return nil
}

// Put stores the object oid of size bytes read from r. The content goes
// to a temporary file first and is moved into place only when its size
// and SHA-256 match; an object already stored is never replaced. Put
// reads no more than size+1 bytes.
func (o Objects) Put(oid string, size int64, r io.Reader) error {
	if !ValidOID(oid) || size < 0 {
		return fmt.Errorf("%w: invalid object id or size", ErrCorrupt)
	}
	if err := o.fits(oid, size); err != nil {
		return err
	}
	tmp := tmpDir(o.Dir)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	f, err := os.CreateTemp(tmp, oid+"-*")
	if err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	if n != size {
		return fmt.Errorf("%w: %s: got %d bytes, want %d", ErrCorrupt, oid, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != oid {
		return fmt.Errorf("%w: content hashes to %s, not %s", ErrCorrupt, got, oid)
	}
	// Read-only, like git's own objects: nothing rewrites one in place.
	if err := f.Chmod(0o444); err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	final := o.path(oid)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	// A link never replaces: the first complete copy stays.
	if err := os.Link(f.Name(), final); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("store object %s: %w", oid, err)
	}
	return nil
}
