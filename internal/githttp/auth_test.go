package githttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"cpm/internal/access"
)

// oneToken knows the secret "good" only.
type oneToken struct{}

func (oneToken) IdentifyToken(_ context.Context, secret string) (access.Identity, error) {
	if secret == "good" {
		return access.Identity{}, nil
	}
	return access.Identity{}, access.ErrUnknownToken
}

// emptyBucket has spent every address's failures; it counts new ones.
type emptyBucket struct{ failed int }

func (*emptyBucket) Allow(string) bool { return false }
func (b *emptyBucket) Failed(string)   { b.failed++ }

// TestAuthLimitFailuresOnly: an address that spent its failures is still
// served with a valid token; a bad one gets 429, and nothing valid
// counts as a failure.
func TestAuthLimitFailuresOnly(t *testing.T) {
	lim := &emptyBucket{}
	h := &Handler{Tokens: oneToken{}, Limiter: lim, Log: zerolog.Nop()}
	for _, tc := range []struct {
		secret string
		code   int
	}{{"good", http.StatusOK}, {"bad", http.StatusTooManyRequests}} {
		r := httptest.NewRequest("GET", "/acme/web.git/info/refs", nil)
		r.Header.Set("Authorization", "Bearer "+tc.secret)
		w := httptest.NewRecorder()
		h.authenticated(w, r, "192.0.2.1:1234", func(id access.Identity, _ string) { w.WriteHeader(http.StatusOK) })
		if w.Code != tc.code {
			t.Errorf("%s token: %d, want %d", tc.secret, w.Code, tc.code)
		}
	}
	if lim.failed != 0 {
		t.Errorf("%d failures counted while limited, want 0", lim.failed)
	}
}
