package gateway

import (
	"errors"
	"testing"

	"cpm/internal/access"
	"cpm/internal/store"
)

// TestRelayedKind: a primary's refusal of a relayed HTTP request comes
// back on the relaying node as the same kind (the status code HTTP
// answers), and a status git exits with stands for no refusal.
func TestRelayedKind(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		err       error
		kind      access.Kind // for access errors
		retryable bool
		refusal   bool
	}{
		{"served", 0, nil, 0, false, false},
		{"git failed", 128, nil, 0, false, false},
		{"not found", 1, &access.Error{Kind: access.NotFound, Repo: "a/b"}, access.NotFound, false, true},
		{"denied", 1, &access.Error{Kind: access.Denied, Repo: "a/b"}, access.Denied, false, true},
		{"read-only", 1, &access.Error{Kind: access.ReadOnly, Repo: "a/b"}, access.Denied, false, true},
		{"fenced", 1, retry(store.ErrFenced, "lost lease"), 0, true, true},
		{"refused otherwise", 1, refuse("no"), access.Denied, false, true},
		{"fault", 1, &failure{line: "cpm: internal error", err: errors.New("db")}, 0, false, false},
	} {
		got := relayedRefusal(relayedExit(tc.status, tc.err))
		if (got != nil) != tc.refusal {
			t.Errorf("%s: %v, want a refusal: %v", tc.name, got, tc.refusal)
			continue
		}
		if got == nil {
			continue
		}
		var e *access.Error
		if Retryable(got) != tc.retryable || !tc.retryable && (!errors.As(got, &e) || e.Kind != tc.kind) {
			t.Errorf("%s: %v (retryable %v)", tc.name, got, Retryable(got))
		}
	}
}
