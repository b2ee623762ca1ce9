// Package access answers the gateway's question for every connection: who
// does this key speak for, and what may they do with this repository? It
// looks the facts up in the store and hands them to authz, so transport
// code never touches SQL and authz stays pure.
package access

import (
	"context"
	"errors"
	"fmt"

	"cpm/internal/authz"
	"cpm/internal/store"
)

// Checker resolves keys and decides requests against one store.
type Checker struct {
	Store *store.Store
}

// Identity is an authenticated key and whom it speaks for.
type Identity struct {
	store.KeyOwner
}

// Anonymous is the identity of a git:// client.
var Anonymous = Identity{}

// IsDeployKey reports whether the key is a deploy key.
func (id Identity) IsDeployKey() bool { return id.RepoID != 0 }

// Name is what logs and `whoami` call the identity.
func (id Identity) Name() string {
	switch {
	case id.User != "":
		return id.User
	case id.IsDeployKey():
		return fmt.Sprintf("deploy-key-%d", id.KeyID)
	}
	return "anonymous"
}

// ErrUnknownKey means the key is not registered.
var ErrUnknownKey = errors.New("unknown key")

// Identify finds the identity of a key by its SHA256 fingerprint.
func (c Checker) Identify(ctx context.Context, fingerprint string) (Identity, error) {
	o, err := c.Store.KeyOwnerByFingerprint(ctx, fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnknownKey
	}
	if err != nil {
		return Identity{}, err
	}
	return Identity{o}, nil
}

// IdentifyID finds the identity of a key by its id (forced-command mode).
func (c Checker) IdentifyID(ctx context.Context, id int64) (Identity, error) {
	o, err := c.Store.KeyOwnerByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnknownKey
	}
	if err != nil {
		return Identity{}, err
	}
	return Identity{o}, nil
}

// Result is a decision with the facts behind it; Facts carries the
// canonical repository name for building its path.
type Result struct {
	authz.Decision
	Facts store.RepoFacts
}

// Decide looks up ORG/REPO for the identity and decides the action.
func (c Checker) Decide(ctx context.Context, id Identity, org, repo string, a authz.Action) (Result, error) {
	f, err := c.Store.RepoFacts(ctx, id.UserID, org, repo)
	if err != nil {
		return Result{}, err
	}
	p, af := Translate(id, f)
	return Result{Decision: authz.Decide(p, af, a), Facts: f}, nil
}

// Translate turns stored facts into authz's terms.
func Translate(id Identity, f store.RepoFacts) (authz.Principal, authz.Facts) {
	var p authz.Principal
	switch {
	case id.IsDeployKey():
		p = authz.Principal{Kind: authz.DeployKey, BoundHere: f.RepoExists && id.RepoID == f.RepoID, CanWrite: id.CanWrite}
	case id.UserID != 0:
		p = authz.Principal{Kind: authz.User, SiteAdmin: id.SiteAdmin}
	default:
		p = authz.Principal{Kind: authz.Anonymous}
	}
	af := authz.Facts{OrgExists: f.OrgExists, RepoExists: f.RepoExists, Public: f.Public}
	// Stored values are constrained by CHECKs; anything else is no access.
	af.OrgRole, _ = authz.ParseRole(f.OrgRole)
	af.Grant, _ = authz.ParsePerm(f.Grant)
	return p, af
}
