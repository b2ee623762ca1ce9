package gateway

import (
	"errors"
	"fmt"

	"cpm/internal/access"
	"cpm/internal/store"
)

// refusal is a request turned down with words for the client; line is
// printed as it is. cause, when set, is the store's reason (a fence),
// for Retryable.
type refusal struct {
	line  string
	cause error
}

func (r *refusal) Error() string { return r.line }
func (r *refusal) Unwrap() error { return r.cause }

// retry is a refusal that a client should try again soon: this node
// cannot serve the repository now, another node or a later moment can.
func retry(cause error, format string, a ...any) error {
	return &refusal{line: "cpm: " + fmt.Sprintf(format, a...), cause: cause}
}

// Retryable reports whether err refused a session only for now (this
// node lost its lease, or the repository's primary moved): HTTP answers
// it 503 with Retry-After rather than 403.
func Retryable(err error) bool {
	return errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrNotPrimary)
}

// Refusal marks it as a decision for access.OutcomeOf, not a fault.
func (r *refusal) Refusal() bool { return true }

// refuse is a refusal with the usual "cpm: " prefix.
func refuse(format string, a ...any) error {
	return &refusal{line: "cpm: " + fmt.Sprintf(format, a...)}
}

// failure is a fault with the line the client is told; the cause goes to
// the log only.
type failure struct {
	line string
	err  error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// clientLine is the one line the client sees for err: the refusal's own
// words, and for a fault no more than that one occurred.
func clientLine(err error) string {
	var (
		r *refusal
		f *failure
		e *access.Error
	)
	switch {
	case errors.As(err, &r):
		return r.line
	case errors.As(err, &f):
		return f.line
	case errors.As(err, &e):
		return "cpm: " + e.Error()
	}
	return "cpm: internal error; try again later"
}
