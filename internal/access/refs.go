package access

import (
	"context"
	"fmt"

	"cpm/internal/authz"
	"cpm/internal/names"
)

// DecideRefs decides every ref update of a push by id, with the
// repository's protected patterns filled in here; the first refusal is
// the error (an *Error naming the ref).
func (c Checker) DecideRefs(ctx context.Context, id Identity, repo names.RepoPath, updates []authz.RefUpdate) error {
	facts, err := c.store.RepoFacts(ctx, id.UserID, repo.Org, repo.Repo)
	if err != nil {
		return internal(repo.String(), fmt.Errorf("decide refs of %s: %w", repo, err))
	}
	patterns, err := c.store.ProtectedRefs(ctx, facts.RepoID)
	if err != nil {
		return internal(repo.String(), fmt.Errorf("protected refs of %s: %w", repo, err))
	}
	principal, af := Translate(id, facts)
	for _, u := range updates {
		u.Protected = authz.Protected(patterns, u.Ref)
		if d := authz.DecideRef(principal, af, u); !d.Allow {
			if d.Hidden {
				return &Error{Kind: NotFound, Repo: repo.String()}
			}
			return &Error{Kind: Denied, Repo: repo.String(), Ref: u.Ref, Reason: d.Reason}
		}
	}
	return nil
}
