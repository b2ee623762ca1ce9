package gateway

import (
	"errors"

	"cpm/internal/access"
	"cpm/internal/store"
)

// A relayed HTTP request's refusal reaches the relaying node only as the
// primary's exit status and its words: these statuses (which git never
// exits with) carry the refusal's kind, so that HTTP answers it with the
// same status code as a refusal made locally.
const (
	exitNotFound = 100 + iota // a missing (or unreadable) repository
	exitDenied                // any other refusal
	exitRetry                 // this node cannot serve it now (Retryable)
)

// relayedExit is the status a primary ends a relayed stateless request
// with: status itself when it was served or failed, else its refusal's
// kind.
func relayedExit(status int, err error) int {
	var e *access.Error
	switch {
	case err == nil || access.OutcomeOf(err) == access.Failed:
		return status
	case Retryable(err):
		return exitRetry
	case errors.As(err, &e) && e.Kind == access.NotFound:
		return exitNotFound
	}
	return exitDenied
}

// relayedRefusal is the refusal a relayed request's exit status stands
// for (relayedExit), or nil when it stands for none. Its line is the
// primary's, which the client was already sent. Only a relayed status
// is read so: a local git or hook may exit with any status.
func relayedRefusal(status int) error {
	switch status {
	case exitNotFound:
		return &access.Error{Kind: access.NotFound}
	case exitDenied:
		return &access.Error{Kind: access.Denied}
	case exitRetry:
		return retry(store.ErrNotPrimary, "the repository's primary cannot serve it now")
	}
	return nil
}
