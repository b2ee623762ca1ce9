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

// A node's replica set is its scope: patterns (which server set refuses
// for nodes anyway) never keep a repository from a node.
func TestCheckScopePassesNodes(t *testing.T) {
	if err := CheckScope(store.Server{Name: "n2", Role: store.Node, RepoPatterns: "tools/*"}, "acme/web"); err != nil {
		t.Errorf("node refused: %v", err)
	}
	if err := CheckScope(store.Server{Name: "b", Role: store.Neighbor, RepoPatterns: "tools/*"}, "acme/web"); err == nil {
		t.Error("neighbour's scope not applied")
	}
}

func TestTargetOfNodeIsReachedAsAPeer(t *testing.T) {
	for role, peer := range map[store.Role]bool{store.Backup: false, store.Neighbor: true, store.Node: true} {
		if got := TargetOf(store.Server{Name: "x", Role: role}).Peer; got != peer {
			t.Errorf("%s: Peer %v, want %v", role, got, peer)
		}
	}
}
