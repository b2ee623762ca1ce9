package transfer

import (
	"errors"
	"testing"

	"cpm/internal/store"
)

func TestCheckScope(t *testing.T) {
	tests := []struct {
		patterns, repo string
		in             bool
	}{
		{"", "acme/web", true},
		{"acme/*", "acme/web", true},
		{"acme/*,tools/cli", "tools/cli", true},
		{"acme/web", "acme/pub", false},
		{"tools/*", "acme/web", false},
		{"acme/w?b", "acme/web", true},
	}
	for _, tt := range tests {
		err := CheckScope(store.Server{Name: "b1", RepoPatterns: tt.patterns}, tt.repo)
		var se *ScopeError
		switch {
		case tt.in && err != nil:
			t.Errorf("%s in %q: %v", tt.repo, tt.patterns, err)
		case !tt.in && !errors.As(err, &se):
			t.Errorf("%s outside %q: %v, want a *ScopeError", tt.repo, tt.patterns, err)
		case !tt.in && err.Error() != tt.repo+" is outside the scope of b1 (--repos "+tt.patterns+")":
			t.Errorf("message: %q", err)
		}
	}
}
