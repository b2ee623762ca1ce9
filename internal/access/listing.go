package access

import (
	"context"

	"cpm/internal/authz"
	"cpm/internal/store"
)

// Listing is one repository the identity may read, for `info`.
type Listing struct {
	Org, Repo string
	Perm      authz.Perm
	Origin    string // set for a replica
}

// Readable lists what the identity may read: this node's repositories and
// the replicas it holds.
func (c Checker) Readable(ctx context.Context, id Identity) ([]Listing, error) {
	var out []Listing
	add := func(st *store.Store, who Identity, origin string) error {
		all, err := st.ReadableRepoFacts(ctx, Readers(who))
		if err != nil {
			return err
		}
		for _, f := range all {
			p, af := Translate(who, f)
			if perm := authz.Effective(p, af); perm >= authz.PermRead {
				if origin != "" {
					perm = min(perm, authz.PermRead)
				}
				out = append(out, Listing{Org: f.Org, Repo: f.Repo, Perm: perm, Origin: origin})
			}
		}
		return nil
	}
	if err := add(c.store, id, ""); err != nil {
		return nil, err
	}
	if c.replicas == nil || id.Peer != "" {
		return out, nil
	}
	origins, err := c.replicas.Origins()
	if err != nil {
		return nil, err
	}
	for _, o := range origins {
		meta, err := c.replicas.Store(ctx, o, false)
		if err != nil {
			return nil, err
		}
		there, err := identityIn(ctx, meta, id)
		if err != nil {
			return nil, err
		}
		if err := add(meta, there, o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Readers is what the store needs to pick, by index, the repositories
// the identity may read; authz still decides each one.
func Readers(id Identity) store.Readers {
	return store.Readers{UserID: id.UserID, SiteAdmin: id.SiteAdmin && id.UserID != 0, DeployRepo: id.RepoID}
}
