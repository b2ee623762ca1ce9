package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/replica"
	"cpm/internal/store"
)

// Result is a decision with the facts behind it; Facts carries the
// canonical repository name for building its path.
type Result struct {
	authz.Decision
	Facts store.RepoFacts
	// Origin is set for a replica: the neighbour it comes from, and
	// where to push instead.
	Origin, OriginURL string
}

// Decide looks up ORG/REPO for the identity and decides the action. A
// repository this node does not own may be a replica: reads are decided
// with its origin's metadata, exactly as the origin would, and writes are
// refused (each repository has one writer) with the origin's URL for
// those who may read it.
func (c Checker) Decide(ctx context.Context, id Identity, org, repo string, a authz.Action) (Result, error) {
	f, err := c.store.RepoFacts(ctx, id.UserID, org, repo)
	if err != nil {
		return Result{}, err
	}
	if !f.RepoExists && c.replicas != nil && id.Peer == "" {
		origin, meta, err := c.replicas.Find(ctx, org, repo)
		if err == nil {
			return c.decideReplica(ctx, id, origin, meta, org, repo, a)
		}
		if !errors.Is(err, replica.ErrNotReplica) {
			return Result{}, err
		}
	}
	p, af := Translate(id, f)
	return Result{Decision: authz.Decide(p, af, a), Facts: f}, nil
}

func (c Checker) decideReplica(ctx context.Context, id Identity, origin string, meta *store.Store, org, repo string, a authz.Action) (Result, error) {
	there, err := identityIn(ctx, meta, id)
	if err != nil {
		return Result{}, err
	}
	f, err := meta.RepoFacts(ctx, there.UserID, org, repo)
	if err != nil {
		return Result{}, err
	}
	p, af := Translate(there, f)
	res := Result{Decision: authz.Decide(p, af, authz.Read), Facts: f, Origin: origin}
	if a == authz.Read || !res.Allow {
		return res, nil
	}
	res.OriginURL = c.originURL(ctx, origin, f)
	res.Decision = authz.Decision{Perm: res.Perm,
		Reason: fmt.Sprintf("a read-only replica of %s; push to %s", origin, res.OriginURL)}
	return res, nil
}

// identityIn is whom the identity's key speaks for in an origin's
// metadata: nobody (anonymous) when the origin does not know the key.
func identityIn(ctx context.Context, meta *store.Store, id Identity) (Identity, error) {
	if id.Fingerprint == "" {
		return Identity{}, nil
	}
	o, err := meta.KeyOwnerByFingerprint(ctx, id.Fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, nil
	}
	return Identity{KeyOwner: o}, err
}

// originURL is where a replica's origin takes pushes, as this node
// reaches it.
func (c Checker) originURL(ctx context.Context, origin string, f store.RepoFacts) string {
	srv, err := c.store.ServerByName(ctx, origin)
	if err != nil {
		return "the origin " + origin
	}
	return "ssh://git@" + net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)) + "/" + f.Org + "/" + f.Repo + ".git"
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
	p.Forwarded = id.Via != ""
	if t := id.Token; t != nil {
		p.ReadOnly = t.ReadOnly
		p.Scoped = t.Scoped || len(t.RepoIDs) > 0
		p.InScope = p.Scoped && t.inScope(f)
	}
	af := authz.Facts{OrgExists: f.OrgExists, RepoExists: f.RepoExists, Public: f.Public}
	// Stored values are constrained by CHECKs; anything else is no access.
	af.OrgRole, _ = authz.ParseRole(f.OrgRole)
	af.Grant, _ = authz.ParsePerm(f.Grant)
	return p, af
}

// Grant is an allowed request: the repository's canonical name, and for a
// replica the origin it comes from.
type Grant struct {
	Repo   names.RepoPath
	Perm   authz.Perm
	Origin string
}

// Authorize decides the action on repo for id. A refusal is an *Error:
// NotFound (Creatable when a push may create it), Denied with the reason,
// ReadOnly naming the origin's URL, or Internal.
func (c Checker) Authorize(ctx context.Context, id Identity, repo names.RepoPath, a authz.Action) (Grant, error) {
	name := repo.String()
	res, err := c.Decide(ctx, id, repo.Org, repo.Repo, a)
	if err != nil {
		return Grant{}, internal(name, fmt.Errorf("authorize %s: %w", name, err))
	}
	if res.Allow {
		return Grant{Repo: names.RepoPath{Org: res.Facts.Org, Repo: res.Facts.Repo}, Perm: res.Perm, Origin: res.Origin}, nil
	}
	switch {
	case res.OriginURL != "":
		return Grant{}, &Error{Kind: ReadOnly, Repo: name, Reason: res.Reason, Origin: res.Origin}
	case !res.Facts.RepoExists && a == authz.Push && res.Origin == "":
		p, af := Translate(id, res.Facts)
		d := authz.Decide(p, af, authz.Create)
		if !d.Allow && !d.Hidden {
			// One who sees the organisation (a member, or any push
			// forwarded by a neighbour) learns why not: it tells them
			// nothing they cannot read already.
			return Grant{}, &Error{Kind: Denied, Repo: name, Reason: d.Reason}
		}
		return Grant{}, &Error{Kind: NotFound, Repo: name, Creatable: d.Allow}
	case res.Hidden:
		return Grant{}, &Error{Kind: NotFound, Repo: name}
	}
	return Grant{}, &Error{Kind: Denied, Repo: name, Reason: res.Reason}
}
