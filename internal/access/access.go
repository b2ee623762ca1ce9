// Package access answers the gateway's question for every connection: who
// does this key speak for, and what may they do with this repository? It
// looks the facts up in the store (or, for a replica, in its origin's
// metadata) and hands them to authz, so transport code never touches SQL
// and authz stays pure.
package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"cpm/internal/authz"
	"cpm/internal/replica"
	"cpm/internal/store"
)

// Checker resolves keys and decides requests against one store and the
// peers' metadata for the replicas this node holds.
type Checker struct {
	Store    *store.Store
	Replicas *replica.Set // nil: this node holds no replicas
}

// Identity is an authenticated key and whom it speaks for.
type Identity struct {
	store.KeyOwner
	// Peer is set when the key is an approved neighbour's replication
	// key: the connection may deliver replicas, and do nothing else.
	Peer string
	// Remote names the key's owner at an origin when the key is
	// registered only there: it reads that origin's replicas, and is
	// nobody on this node's own repositories.
	Remote string
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
	case id.Peer != "":
		return "peer:" + id.Peer
	case id.Remote != "":
		return id.Remote
	}
	return "anonymous"
}

// ErrUnknownKey means the key is not registered.
var ErrUnknownKey = errors.New("unknown key")

// Identify finds the identity of a key by its SHA256 fingerprint: a key
// of this node, an approved neighbour's replication key, or a key that an
// origin of this node's replicas registered.
func (c Checker) Identify(ctx context.Context, fingerprint string) (Identity, error) {
	o, err := c.Store.KeyOwnerByFingerprint(ctx, fingerprint)
	if err == nil {
		return Identity{KeyOwner: o}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Identity{}, err
	}
	peer, err := c.Store.PeerByFingerprint(ctx, fingerprint)
	if err == nil {
		return Identity{KeyOwner: store.KeyOwner{Fingerprint: fingerprint}, Peer: peer.Name}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Identity{}, err
	}
	if c.Replicas != nil {
		o, err := c.Replicas.Owner(ctx, fingerprint)
		if err == nil {
			name := o.User
			if name == "" {
				name = fmt.Sprintf("deploy-key-%d", o.KeyID)
			}
			// Only the fingerprint and a name for logs: the origin's ids
			// mean nothing against this node's own database.
			return Identity{KeyOwner: store.KeyOwner{Fingerprint: fingerprint}, Remote: name}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Identity{}, err
		}
	}
	return Identity{}, ErrUnknownKey
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
	return Identity{KeyOwner: o}, nil
}

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
	f, err := c.Store.RepoFacts(ctx, id.UserID, org, repo)
	if err != nil {
		return Result{}, err
	}
	if !f.RepoExists && c.Replicas != nil && id.Peer == "" {
		origin, meta, err := c.Replicas.Find(ctx, org, repo)
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
	srv, err := c.Store.ServerByName(ctx, origin)
	if err != nil {
		return "the origin " + origin
	}
	return "ssh://git@" + net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)) + "/" + f.Org + "/" + f.Repo + ".git"
}

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
		all, err := st.AllRepoFacts(ctx, who.UserID)
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
	if err := add(c.Store, id, ""); err != nil {
		return nil, err
	}
	if c.Replicas == nil || id.Peer != "" {
		return out, nil
	}
	origins, err := c.Replicas.Origins()
	if err != nil {
		return nil, err
	}
	for _, o := range origins {
		meta, err := c.Replicas.Store(ctx, o, false)
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
