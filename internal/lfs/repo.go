package lfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	pathpkg "path"
	"strings"
	"unicode"
	"unicode/utf8"

	"cpm/internal/printable"
)

// Repo is one repository's LFS objects and locks as one identity may use
// them, whatever the transport: the ssh session holds one for its run,
// the HTTP API one per request. The transports differ in framing only;
// what is allowed, checked and stored is decided here.
type Repo struct {
	Objects Objects
	Locks   Locks  // nil: this node takes no locks (a replica)
	User    string // who locks and unlocks, by name
	// CanWrite is push permission: needed for uploads and every lock
	// change; Admin may remove others' locks.
	CanWrite, Admin bool
	// NoWrite says why writes are refused when CanWrite is false (the
	// client shows it); "" for the plain "needs push access".
	NoWrite string
	// Fence, when set, says whether this node may still take a write (a
	// cluster node's lease and the repository's primary role), asked as
	// each upload is stored: an object acknowledged by a node that has
	// lost the repository would be missing where the push that needs it
	// lands.
	Fence func() error
}

// Action is what a batch tells the client to do with one object.
type Action string

const (
	ActUpload   Action = "upload"
	ActDownload Action = "download"
	ActNone     Action = "noop"    // stored already (upload)
	ActMissing  Action = "missing" // not stored (download)
)

// Plan decides one object of a batch: an upload over the size limit is
// ErrTooLarge, an invalid id or size ErrInvalid.
func (r Repo) Plan(op Operation, oid string, size int64) (Action, error) {
	if !ValidOID(oid) || size < 0 {
		return "", refusal(ErrInvalid, "object id must be 64 lower-case hex digits and size at least 0")
	}
	have, ok, err := r.Objects.Size(oid)
	if err != nil {
		return "", err
	}
	if op == Download {
		if ok {
			return ActDownload, nil
		}
		return ActMissing, nil
	}
	if err := r.Objects.fits(oid, size); err != nil {
		return "", err
	}
	if ok && have == size {
		return ActNone, nil
	}
	return ActUpload, nil
}

// Store keeps an uploaded object (Objects.Put), then asks the fence: an
// ErrFenced-wrapped error means the node may no longer take writes and
// the client must not count the object as stored here.
func (r Repo) Store(oid string, size int64, body io.Reader) error {
	if err := r.Objects.Put(oid, size, body); err != nil {
		return err
	}
	if r.Fence != nil {
		if err := r.Fence(); err != nil {
			return fenced{err}
		}
	}
	return nil
}

// Verify confirms that oid is stored with size bytes: ErrNotStored or
// ErrSizeMismatch otherwise.
func (r Repo) Verify(oid string, size int64) error {
	have, stored, err := r.Objects.Size(oid)
	switch {
	case err != nil:
		return fmt.Errorf("read object %s: %w", oid, err)
	case !stored:
		return refusal(ErrNotStored, "object %s not found", printable.Clip(oid))
	case have != size:
		return refusal(ErrSizeMismatch, "object %s is %d bytes here, not %d", oid, have, size)
	}
	return nil
}

// maxLockPath bounds a locked path.
const maxLockPath = 4096

// Lock locks path for the repository's user; ErrLockExists comes with
// the lock that holds it.
func (r Repo) Lock(ctx context.Context, path string) (Lock, error) {
	if !lockablePath(path) {
		return Lock{}, refusal(ErrInvalid, "a lock needs a clean relative path in UTF-8 without control or format characters, at most %d bytes", maxLockPath)
	}
	return r.Locks.Create(ctx, path, r.User)
}

// lockablePath reports whether p may be locked. No control or format
// characters: every client that lists locks prints the paths others
// locked, and an escape sequence or a bidirectional override there would
// be theirs. A clean path relative to the work tree (as git-lfs sends
// it): one file has one spelling, so that a lock cannot be dodged by
// another (a/./b, a//b, ../x).
func lockablePath(p string) bool {
	bad := func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }
	return p != "" && len(p) <= maxLockPath && utf8.ValidString(p) && strings.IndexFunc(p, bad) < 0 &&
		pathpkg.Clean(p) == p && p != "." && p != ".." && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "../")
}

// Unlock removes the lock id: its owner's own, or another's with force
// by a repository admin (ErrNotYours otherwise).
func (r Repo) Unlock(ctx context.Context, id string, force bool) (Lock, error) {
	l, err := r.Locks.Get(ctx, id)
	if err != nil {
		return Lock{}, err
	}
	if l.Owner != r.User && !(force && r.Admin) {
		return l, refusal(ErrNotYours, "lock %s on %s is %s's; only they or a repository admin may remove it", l.ID, l.Path, l.Owner)
	}
	return l, r.Locks.Delete(ctx, l)
}

// maxLocksPage is the most locks one list answer holds.
const maxLocksPage = 100

// ListLocks is a page of locks (Locks.List), at most maxLocksPage; a
// limit of 0 or less asks for a whole page.
func (r Repo) ListLocks(ctx context.Context, path, id, cursor string, limit int) ([]Lock, string, error) {
	if limit <= 0 || limit > maxLocksPage {
		limit = maxLocksPage
	}
	return r.Locks.List(ctx, path, id, cursor, limit)
}

// Ours reports whether l is the repository user's lock.
func (r Repo) Ours(l Lock) bool { return l.Owner == r.User }

var (
	// ErrInvalid is a request whose object id, size or path is not valid.
	ErrInvalid = errors.New("invalid request")
	// ErrNotStored is a verify of an object that is not stored.
	ErrNotStored = errors.New("not stored")
	// ErrSizeMismatch is a verify whose size is not the stored one's.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrNotYours is an unlock of another's lock without the right.
	ErrNotYours = errors.New("lock held by another user")
	// ErrFenced is an upload stored by a node that may no longer take
	// writes of the repository.
	ErrFenced = errors.New("this node no longer takes writes of the repository")
)

// kindError is a refusal of kind (errors.Is) in words for the client.
type kindError struct {
	kind error
	msg  string
}

func refusal(kind error, format string, a ...any) error {
	return kindError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

func (r kindError) Error() string        { return r.msg }
func (r kindError) Is(target error) bool { return target == r.kind }

// fenced is the fence's refusal, in its own words, as an ErrFenced.
type fenced struct{ err error }

func (f fenced) Error() string        { return f.err.Error() }
func (f fenced) Unwrap() error        { return f.err }
func (f fenced) Is(target error) bool { return target == ErrFenced }
