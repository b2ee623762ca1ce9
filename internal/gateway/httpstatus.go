package gateway

import (
	"errors"
	"net/http"

	"cpm/internal/access"
)

// HTTPChallenge is the WWW-Authenticate value of a 401: HTTP Basic, the
// token as the password.
const HTTPChallenge = `Basic realm="cpm"`

// HTTPStatus is the status an HTTP transport (git's smart HTTP, the Git
// LFS API) answers err with, the same for both. A repository that is
// missing or that the identity may not read, and an anonymous write: 401
// asking for credentials (challenge) to an anonymous client, and 404 to
// one with a valid token — a 401 would make git and git-lfs erase that
// token from the credential helper; both answers are the same for a
// missing and a hidden repository. While this node cannot serve the
// repository (a lost lease, a primary that moved): 503, to be retried.
// Faults: 500. Every other refusal: 403.
func HTTPStatus(err error, anonymous bool) (code int, challenge, retry bool) {
	var e *access.Error
	switch {
	case errors.As(err, &e) && e.Kind == access.NotFound && !anonymous:
		return http.StatusNotFound, false, false
	case errors.As(err, &e) && e.Kind == access.NotFound,
		errors.As(err, &e) && e.Kind == access.Denied && anonymous:
		return http.StatusUnauthorized, true, false
	case Retryable(err):
		return http.StatusServiceUnavailable, false, true
	case access.OutcomeOf(err) == access.Failed:
		return http.StatusInternalServerError, false, false
	}
	return http.StatusForbidden, false, false
}
