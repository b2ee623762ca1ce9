// Package authz decides what a principal may do with a repository or an
// organisation. It is a pure function of facts the caller has looked up:
// no I/O, no clock, no database, so every rule is covered by table tests.
//
// The rules (README.md, "Roles and permissions"):
//   - a site admin may do everything;
//   - an organisation owner may do everything in the organisation, an org
//     admin may manage members and repositories, an org member may read
//     every repository of the organisation;
//   - a per-repository grant gives read, write or admin;
//   - a deploy key is bound to one repository, read-only unless writable;
//   - anyone with a registered key may read a public repository, and
//     anonymous clients (git://, HTTP without a token) may read public
//     repositories only;
//   - a non-fast-forward update or deletion of a protected ref needs
//     repository admin;
//   - a push a neighbour forwarded carries write at most, whoever pushed:
//     no protected-ref rewrite or deletion, no create, no admin action;
//   - an access token never does more than its user: a read-only token
//     reads at most, a scoped token reaches its repositories only (any
//     other is to it as to an anonymous client), and neither creates a
//     repository or manages an organisation;
//   - a principal who may not read a repository is told it does not exist.
package authz

import "fmt"

// Perm is a level of access to one repository. Levels are ordered.
type Perm int

const (
	PermNone Perm = iota
	PermRead
	PermWrite
	PermAdmin
)

func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermAdmin:
		return "admin"
	}
	return "none"
}

// ParsePerm parses "read", "write" or "admin".
func ParsePerm(s string) (Perm, error) {
	switch s {
	case "read":
		return PermRead, nil
	case "write":
		return PermWrite, nil
	case "admin":
		return PermAdmin, nil
	}
	return PermNone, fmt.Errorf("invalid permission %q: want read, write or admin", s)
}

// Role is a membership role in an organisation. Roles are ordered.
type Role int

const (
	RoleNone Role = iota
	RoleMember
	RoleAdmin
	RoleOwner
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	case RoleOwner:
		return "owner"
	}
	return "none"
}

// ParseRole parses "owner", "admin" or "member".
func ParseRole(s string) (Role, error) {
	switch s {
	case "owner":
		return RoleOwner, nil
	case "admin":
		return RoleAdmin, nil
	case "member":
		return RoleMember, nil
	}
	return RoleNone, fmt.Errorf("invalid role %q: want owner, admin or member", s)
}

// Kind says what sort of principal is asking.
type Kind int

const (
	Anonymous Kind = iota // git:// or HTTP client without a key or token
	User                  // a user's registered key
	DeployKey             // a key bound to one repository
)

// Principal is who is asking.
type Principal struct {
	Kind      Kind
	SiteAdmin bool // User only
	// DeployKey only: whether the key is bound to the repository in
	// question, and whether it was added with --write.
	BoundHere bool
	CanWrite  bool
	// Forwarded marks a push that a neighbour forwarded for this
	// principal: the neighbour vouches for who pushed, not for how much
	// they may do, so it carries write at most and never creates.
	Forwarded bool
	// An access token's limits. Scoped: the token was limited to some
	// repositories, and InScope says whether this one is among them.
	// ReadOnly: the token reads at most (a deploy token without --write
	// also has CanWrite false).
	Scoped, InScope bool
	ReadOnly        bool
}

// limited reports whether the principal is a token narrower than its
// user.
func (p Principal) limited() bool { return p.Scoped || p.ReadOnly }

// Facts describe the target and the principal's relation to it.
type Facts struct {
	OrgExists  bool
	RepoExists bool
	Public     bool
	OrgRole    Role // the principal's role in the organisation
	Grant      Perm // the principal's direct grant on the repository
}

// Action is something a principal wants to do.
type Action int

const (
	Read          Action = iota // clone, fetch, archive, ls-remote
	Push                        // run receive-pack at all; refs are checked by DecideRef
	Create                      // push to a repository that does not exist yet
	ManageRepo                  // grants, protected refs, deploy keys
	DeleteRepo                  // move a repository to the trash
	ManageMembers               // add or remove members below owner
	ManageOwners                // give or take the owner role
	DeleteOrg                   // delete the organisation
)

var actionNames = [...]string{"read", "push", "create", "manage-repo", "delete-repo", "manage-members", "manage-owners", "delete-org"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Decision is the answer with its reason, for logs and the audit trail.
type Decision struct {
	Allow bool
	// Hidden means the principal may not read the repository, so the
	// denial must look exactly like "repository not found".
	Hidden bool
	Perm   Perm // the principal's effective permission on the repository
	Reason string
}

// Effective returns the principal's permission on the repository.
func Effective(p Principal, f Facts) Perm {
	var perm Perm
	if p.Scoped && !p.InScope {
		perm = effective(Principal{Kind: Anonymous}, f)
	} else {
		perm = effective(p, f)
	}
	if p.Forwarded {
		perm = min(perm, PermWrite)
	}
	if p.ReadOnly {
		perm = min(perm, PermRead)
	}
	return perm
}

func effective(p Principal, f Facts) Perm {
	if !f.RepoExists {
		return PermNone
	}
	switch p.Kind {
	case Anonymous:
		if f.Public {
			return PermRead
		}
		return PermNone
	case DeployKey:
		switch {
		case !p.BoundHere:
			return PermNone
		case p.CanWrite:
			return PermWrite
		default:
			return PermRead
		}
	}
	perm := f.Grant
	switch {
	case p.SiteAdmin, f.OrgRole >= RoleAdmin:
		perm = PermAdmin
	case f.OrgRole == RoleMember, f.Public:
		perm = max(perm, PermRead)
	}
	return perm
}

// orgRole is the principal's standing in the organisation, with site
// admins counted as owners.
func orgRole(p Principal, f Facts) Role {
	switch {
	case p.Kind != User:
		return RoleNone
	case p.limited() && p.SiteAdmin:
		return RoleMember
	case p.Forwarded, p.limited():
		return min(f.OrgRole, RoleMember)
	case p.SiteAdmin:
		return RoleOwner
	}
	return f.OrgRole
}

// Decide answers a repository- or organisation-level request.
func Decide(p Principal, f Facts, a Action) Decision {
	perm := Effective(p, f)
	switch a {
	case Read:
		return need(perm, PermRead, "read")
	case Push:
		d := need(perm, PermWrite, "write")
		if !d.Allow && !d.Hidden && p.ReadOnly {
			d.Reason = "the token is read-only"
		}
		return d
	case ManageRepo:
		return need(perm, PermAdmin, "admin")
	case DeleteRepo:
		d := need(perm, PermAdmin, "admin")
		if d.Allow && orgRole(p, f) < RoleAdmin {
			return Decision{Perm: perm, Reason: "deleting a repository needs org owner or admin"}
		}
		return d
	case Create:
		if f.RepoExists {
			return Decision{Perm: perm, Reason: "repository exists"}
		}
		switch {
		case !f.OrgExists:
			return Decision{Hidden: true, Reason: "organisation does not exist"}
		case p.Forwarded:
			return Decision{Hidden: f.OrgRole == RoleNone && !p.SiteAdmin, Reason: "a push forwarded by a neighbour never creates a repository"}
		case p.limited():
			// A scoped token reaches its repositories only: one that does
			// not exist is to it like one outside its scope.
			return Decision{Hidden: p.Scoped || (f.OrgRole < RoleAdmin && !p.SiteAdmin), Reason: "a read-only or scoped token never creates a repository"}
		case orgRole(p, f) >= RoleAdmin:
			return Decision{Allow: true, Perm: PermAdmin, Reason: "org " + orgRole(p, f).String() + " may create"}
		}
		return Decision{Hidden: true, Reason: "only org owners and admins create by pushing"}
	case ManageMembers, ManageOwners, DeleteOrg:
		min := RoleAdmin
		if a != ManageMembers {
			min = RoleOwner
		}
		r := orgRole(p, f)
		if !f.OrgExists {
			return Decision{Hidden: true, Reason: "organisation does not exist"}
		}
		if r >= min {
			return Decision{Allow: true, Perm: perm, Reason: "org " + r.String()}
		}
		return Decision{Hidden: r == RoleNone, Perm: perm, Reason: a.String() + " needs org " + min.String()}
	}
	return Decision{Hidden: perm < PermRead, Perm: perm, Reason: "unknown action"}
}

func need(have, want Perm, what string) Decision {
	switch {
	case have >= want:
		return Decision{Allow: true, Perm: have, Reason: "has " + have.String()}
	case have < PermRead:
		return Decision{Hidden: true, Perm: have, Reason: "no read access"}
	}
	return Decision{Perm: have, Reason: "needs " + what + ", has " + have.String()}
}

// RefUpdate is one ref change in a push.
type RefUpdate struct {
	Ref         string
	Delete      bool
	FastForward bool // false for a forced (non-fast-forward) update; ignored for creation
	Create      bool
	Protected   bool // the ref matches one of the repository's protected patterns
}

// DecideRef answers whether one ref update in a push is allowed. A writer
// may create refs and fast-forward; rewriting or deleting a protected ref
// needs repository admin.
func DecideRef(p Principal, f Facts, u RefUpdate) Decision {
	d := Decide(p, f, Push)
	if !d.Allow {
		return d
	}
	rewrite := u.Delete || (!u.Create && !u.FastForward)
	if u.Protected && rewrite {
		verb := "force-push"
		if u.Delete {
			verb = "delete"
		}
		if d.Perm < PermAdmin {
			reason := verb + " of protected " + u.Ref + " needs admin"
			if p.Forwarded {
				reason += ", which a push forwarded by a neighbour never carries"
			}
			return Decision{Perm: d.Perm, Reason: reason}
		}
		return Decision{Allow: true, Perm: d.Perm, Reason: "admin may " + verb + " protected ref"}
	}
	return d
}
