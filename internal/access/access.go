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
	"time"

	"cpm/internal/authcache"
	"cpm/internal/replica"
	"cpm/internal/store"
)

// Checker resolves keys and decides requests against one store and the
// peers' metadata for the replicas this node holds. The zero Checker has
// no store; build one with New.
type Checker struct {
	store    *store.Store
	replicas *replica.Set // nil: this node holds no replicas
	// cache answers the hot reads on a serving node (nil: none).
	cache   *authcache.Cache
	touched *touches // tokens whose last use this process recorded
}

// New returns a Checker on st and, unless replicas is nil, the origins'
// metadata of the replicas this node holds. The caller keeps ownership of
// both.
func New(st *store.Store, replicas *replica.Set) Checker {
	return Checker{store: st, replicas: replicas, touched: &touches{at: map[int64]time.Time{}}}
}

// Identity is an authenticated key and whom it speaks for.
type Identity struct {
	store.KeyOwner
	// Peer is set when the key is an approved neighbour's replication
	// key, or another cluster node's (then Node is set too): the
	// connection may deliver replicas, and do nothing else.
	Peer string
	// Node is set when Peer names a node of this node's own cluster (a
	// servers row of role node, which only the shared database holds):
	// it may also relay its users' sessions here, and never runs a
	// neighbour's verbs (meta, rekey, forward, want).
	Node bool
	// Remote names the key's owner at an origin when the key is
	// registered only there: it reads that origin's replicas, and is
	// nobody on this node's own repositories.
	Remote string
	// Cert is set when a certificate authenticated the user.
	Cert *CertInfo
	// Via names the neighbour that forwarded this identity's push: it
	// carries write at most (authz.Principal.Forwarded).
	Via string
	// Token is set when an access token (HTTP) authenticated the
	// identity: it does at most what its user (or deploy token) may,
	// narrowed by its scope and read-only flag.
	Token *TokenInfo
}

// CertInfo names the certificate that authenticated an identity, for
// logs and the audit log.
type CertInfo struct {
	KeyID  string
	Serial uint64
	CA     string // the authority's name
}

// Anonymous is the identity of a git:// client and of an HTTP request
// without credentials.
var Anonymous = Identity{}

// IsDeployKey reports whether the key is a deploy key.
func (id Identity) IsDeployKey() bool { return id.RepoID != 0 }

// Name is what logs and `whoami` call the identity.
func (id Identity) Name() string {
	switch {
	case id.User != "":
		return id.User
	case id.IsDeployKey() && id.Token != nil && id.KeyID == 0:
		return fmt.Sprintf("deploy-token-%d", id.Token.ID)
	case id.IsDeployKey():
		return fmt.Sprintf("deploy-key-%d", id.KeyID)
	case id.Node:
		return "node:" + id.Peer
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
// of this node, an approved neighbour's or another cluster node's
// replication key, or a key that an origin of this node's replicas
// registered. A node is told from a neighbour by its row's role alone:
// nothing a neighbour sends can make it one.
func (c Checker) Identify(ctx context.Context, fingerprint string) (Identity, error) {
	o, err := c.keyOwner(ctx, fingerprint)
	if err == nil {
		return Identity{KeyOwner: o}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Identity{}, err
	}
	peer, err := c.store.PeerByFingerprint(ctx, fingerprint)
	if err == nil {
		return Identity{KeyOwner: store.KeyOwner{Fingerprint: fingerprint}, Peer: peer.Name, Node: peer.Role == store.Node}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Identity{}, err
	}
	if c.replicas != nil {
		o, err := c.replicas.Owner(ctx, fingerprint)
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

// IdentifyUser is the identity of the user name, authenticated by a
// certificate rather than a registered key.
func (c Checker) IdentifyUser(ctx context.Context, name string) (Identity, error) {
	u, err := c.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnknownKey
	}
	if err != nil {
		return Identity{}, err
	}
	return Identity{KeyOwner: store.KeyOwner{UserID: u.ID, User: u.Name, SiteAdmin: u.Admin}}, nil
}

// IdentifyID finds the identity of a key by its id (forced-command mode).
func (c Checker) IdentifyID(ctx context.Context, id int64) (Identity, error) {
	o, err := c.store.KeyOwnerByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnknownKey
	}
	if err != nil {
		return Identity{}, err
	}
	return Identity{KeyOwner: o}, nil
}
