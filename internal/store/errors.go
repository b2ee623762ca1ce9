package store

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: the named user, key, organisation or repository does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a name or key is already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the change would break an invariant (the last owner, an
	// organisation that still has repositories, …).
	ErrConflict = errors.New("conflict")
)

func notFound(kind, name string) error { return fmt.Errorf("%s %q %w", kind, name, ErrNotFound) }
func exists(kind, name string) error   { return fmt.Errorf("%s %q %w", kind, name, ErrExists) }

// existsAs reports a name taken in another letter case under the
// spelling that holds it: `user add BOB` when bob exists names bob.
func existsAs(kind, name, holder string) error {
	if holder == "" || holder == name {
		return exists(kind, name)
	}
	return fmt.Errorf("%s %q %w as %q (names are unique regardless of case)", kind, name, ErrExists, holder)
}

// conflictError reads as its own message but matches ErrConflict.
type conflictError struct{ msg string }

func (e conflictError) Error() string        { return e.msg }
func (e conflictError) Is(target error) bool { return target == ErrConflict }

func conflict(format string, args ...any) error {
	return conflictError{fmt.Sprintf(format, args...)}
}
