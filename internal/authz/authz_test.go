package authz

import (
	"fmt"
	"strings"
	"testing"
)

// Each column is one request, in this order:
//
//	R  read
//	P  push (a writer's ordinary push: new ref or fast-forward)
//	F  force-push a protected ref
//	D  delete a protected ref
//	f  force-push an unprotected ref
//	d  delete an unprotected ref
//	C  create by pushing (asked against a repository that does not exist)
//	G  manage the repository (grants, protection, deploy keys)
//	X  delete the repository
//	M  manage org members
//	O  manage org owners
//	Z  delete the organisation
//
// '+' allowed, '-' denied openly, 'h' denied as if the target did not exist.
const columns = "RPFDfdCGXMOZ"

type subject struct {
	name string
	p    Principal
	role Role
	perm Perm
}

var subjects = []subject{
	{"anonymous", Principal{Kind: Anonymous}, RoleNone, PermNone},
	{"deploy key, other repo", Principal{Kind: DeployKey}, RoleNone, PermNone},
	{"deploy key, read-only", Principal{Kind: DeployKey, BoundHere: true}, RoleNone, PermNone},
	{"deploy key, --write", Principal{Kind: DeployKey, BoundHere: true, CanWrite: true}, RoleNone, PermNone},
	{"user, no relation", Principal{Kind: User}, RoleNone, PermNone},
	{"user, grant read", Principal{Kind: User}, RoleNone, PermRead},
	{"user, grant write", Principal{Kind: User}, RoleNone, PermWrite},
	{"user, grant admin", Principal{Kind: User}, RoleNone, PermAdmin},
	{"org member", Principal{Kind: User}, RoleMember, PermNone},
	{"org member, grant write", Principal{Kind: User}, RoleMember, PermWrite},
	{"org admin", Principal{Kind: User}, RoleAdmin, PermNone},
	{"org owner", Principal{Kind: User}, RoleOwner, PermNone},
	{"site admin", Principal{Kind: User, SiteAdmin: true}, RoleNone, PermNone},
	// Access tokens: the principal of the token's user (or deploy
	// token), narrowed.
	{"token, read-only, org owner", Principal{Kind: User, ReadOnly: true}, RoleOwner, PermNone},
	{"token, read-only, site admin", Principal{Kind: User, SiteAdmin: true, ReadOnly: true}, RoleNone, PermNone},
	{"token, read-only, grant write", Principal{Kind: User, ReadOnly: true}, RoleNone, PermWrite},
	{"token, in scope, org owner", Principal{Kind: User, Scoped: true, InScope: true}, RoleOwner, PermNone},
	{"token, in scope, grant read", Principal{Kind: User, Scoped: true, InScope: true}, RoleNone, PermRead},
	{"token, out of scope, org owner", Principal{Kind: User, Scoped: true}, RoleOwner, PermNone},
	{"token, out of scope, site admin", Principal{Kind: User, SiteAdmin: true, Scoped: true}, RoleNone, PermNone},
	{"token, out of scope, grant admin", Principal{Kind: User, Scoped: true}, RoleNone, PermAdmin},
	{"deploy token, read-only", Principal{Kind: DeployKey, BoundHere: true, ReadOnly: true}, RoleNone, PermNone},
	{"deploy token, --write", Principal{Kind: DeployKey, BoundHere: true, CanWrite: true}, RoleNone, PermNone},
	{"deploy token, other repo", Principal{Kind: DeployKey, CanWrite: true}, RoleOwner, PermAdmin},
	{"deploy token, write but read-only", Principal{Kind: DeployKey, BoundHere: true, CanWrite: true, ReadOnly: true}, RoleNone, PermNone},
}

// want[subject] = {private, public}
var want = map[string][2]string{
	//                          RPFDfdCGXMOZ    RPFDfdCGXMOZ
	"anonymous":               {"hhhhhhhhhhhh", "+-----h--hhh"},
	"deploy key, other repo":  {"hhhhhhhhhhhh", "hhhhhhhhhhhh"},
	"deploy key, read-only":   {"+-----h--hhh", "+-----h--hhh"},
	"deploy key, --write":     {"++--++h--hhh", "++--++h--hhh"},
	"user, no relation":       {"hhhhhhhhhhhh", "+-----h--hhh"},
	"user, grant read":        {"+-----h--hhh", "+-----h--hhh"},
	"user, grant write":       {"++--++h--hhh", "++--++h--hhh"},
	"user, grant admin":       {"++++++h+-hhh", "++++++h+-hhh"},
	"org member":              {"+-----h-----", "+-----h-----"},
	"org member, grant write": {"++--++h-----", "++--++h-----"},
	"org admin":               {"++++++++++--", "++++++++++--"},
	"org owner":               {"++++++++++++", "++++++++++++"},
	"site admin":              {"++++++++++++", "++++++++++++"},
	// A token never does more than its user (TestTokenNeverMoreThanItsUser
	// checks every cell); out of scope it is anonymous, which for a
	// private repository is "not found".
	"token, read-only, org owner":       {"+-----------", "+-----------"},
	"token, read-only, site admin":      {"+-----------", "+-----------"},
	"token, read-only, grant write":     {"+-----h--hhh", "+-----h--hhh"},
	"token, in scope, org owner":        {"++++++h+----", "++++++h+----"},
	"token, in scope, grant read":       {"+-----h--hhh", "+-----h--hhh"},
	"token, out of scope, org owner":    {"hhhhhhhhh---", "+-----h-----"},
	"token, out of scope, site admin":   {"hhhhhhhhh---", "+-----h-----"},
	"token, out of scope, grant admin":  {"hhhhhhhhhhhh", "+-----h--hhh"},
	"deploy token, read-only":           {"+-----h--hhh", "+-----h--hhh"},
	"deploy token, --write":             {"++--++h--hhh", "++--++h--hhh"},
	"deploy token, other repo":          {"hhhhhhhhhhhh", "hhhhhhhhhhhh"},
	"deploy token, write but read-only": {"+-----h--hhh", "+-----h--hhh"},
}

func request(p Principal, f Facts, col byte) Decision {
	ref := func(protected, del bool) Decision {
		return DecideRef(p, f, RefUpdate{Ref: "refs/heads/x", Protected: protected, Delete: del, FastForward: false})
	}
	switch col {
	case 'R':
		return Decide(p, f, Read)
	case 'P':
		d := Decide(p, f, Push)
		// An ordinary push must also pass per-ref checks for a new branch and a fast-forward of a protected one.
		for _, u := range []RefUpdate{{Ref: "refs/heads/new", Create: true}, {Ref: "refs/heads/main", FastForward: true, Protected: true}} {
			if r := DecideRef(p, f, u); r.Allow != d.Allow {
				return Decision{Reason: fmt.Sprintf("Push=%v but DecideRef(%+v)=%v", d.Allow, u, r.Allow)}
			}
		}
		return d
	case 'F':
		return ref(true, false)
	case 'D':
		return ref(true, true)
	case 'f':
		return ref(false, false)
	case 'd':
		return ref(false, true)
	case 'C':
		f.RepoExists = false
		return Decide(p, f, Create)
	case 'G':
		return Decide(p, f, ManageRepo)
	case 'X':
		return Decide(p, f, DeleteRepo)
	case 'M':
		return Decide(p, f, ManageMembers)
	case 'O':
		return Decide(p, f, ManageOwners)
	case 'Z':
		return Decide(p, f, DeleteOrg)
	}
	panic("unknown column " + string(col))
}

func TestDecideMatrix(t *testing.T) {
	if len(want) != len(subjects) {
		t.Fatalf("want has %d rows, subjects %d", len(want), len(subjects))
	}
	for _, s := range subjects {
		rows, ok := want[s.name]
		if !ok {
			t.Fatalf("no expectations for %q", s.name)
		}
		for vis, row := range rows {
			f := Facts{OrgExists: true, RepoExists: true, Public: vis == 1, OrgRole: s.role, Grant: s.perm}
			for i := range len(columns) {
				col := columns[i]
				d := request(s.p, f, col)
				got := byte('-')
				switch {
				case d.Allow:
					got = '+'
				case d.Hidden:
					got = 'h'
				}
				if got != row[i] {
					t.Errorf("%s, public=%v, %c: got %c want %c (reason %q)", s.name, vis == 1, col, got, row[i], d.Reason)
				}
				if d.Reason == "" {
					t.Errorf("%s, %c: empty reason", s.name, col)
				}
				if d.Allow && d.Hidden {
					t.Errorf("%s, %c: allowed and hidden", s.name, col)
				}
			}
		}
	}
}

// TestTokenNeverMoreThanItsUser: for every user subject, every
// narrowing a token can carry, every request and both visibilities, the
// token is allowed only what its user is allowed, and is never told more
// (a request hidden from the user is hidden from the token).
func TestTokenNeverMoreThanItsUser(t *testing.T) {
	narrowings := []Principal{{ReadOnly: true}, {Scoped: true, InScope: true}, {Scoped: true}, {Scoped: true, ReadOnly: true}, {Scoped: true, InScope: true, ReadOnly: true}}
	for _, s := range subjects {
		if s.p.Kind != User || s.p.limited() {
			continue
		}
		for _, n := range narrowings {
			tok := s.p
			tok.Scoped, tok.InScope, tok.ReadOnly = n.Scoped, n.InScope, n.ReadOnly
			for _, public := range []bool{false, true} {
				f := Facts{OrgExists: true, RepoExists: true, Public: public, OrgRole: s.role, Grant: s.perm}
				for i := range len(columns) {
					user, token := request(s.p, f, columns[i]), request(tok, f, columns[i])
					if token.Allow && !user.Allow {
						t.Errorf("%s, token %+v, public=%v, %c: token allowed, user not", s.name, n, public, columns[i])
					}
					if user.Hidden && !token.Hidden {
						t.Errorf("%s, token %+v, public=%v, %c: hidden from the user, not from the token", s.name, n, public, columns[i])
					}
				}
			}
		}
	}
}

func TestReadOnlyTokenPushReason(t *testing.T) {
	d := Decide(Principal{Kind: User, ReadOnly: true}, Facts{OrgExists: true, RepoExists: true, Grant: PermWrite}, Push)
	if d.Allow || d.Hidden || d.Reason != "the token is read-only" {
		t.Errorf("read-only token's push: %+v", d)
	}
}

func TestMissingRepositoryLooksTheSameToEveryone(t *testing.T) {
	for _, s := range subjects {
		f := Facts{OrgExists: true, RepoExists: false, OrgRole: s.role, Grant: s.perm}
		for _, a := range []Action{Read, Push, ManageRepo, DeleteRepo} {
			if d := Decide(s.p, f, a); d.Allow || !d.Hidden {
				t.Errorf("%s %v on a missing repository: %+v", s.name, a, d)
			}
		}
	}
}

func TestCreateNeedsExistingOrg(t *testing.T) {
	for _, p := range []Principal{{Kind: User, SiteAdmin: true}, {Kind: User}} {
		d := Decide(p, Facts{OrgExists: false, OrgRole: RoleOwner}, Create)
		if d.Allow || !d.Hidden {
			t.Errorf("create in missing org by %+v: %+v", p, d)
		}
	}
	if d := Decide(Principal{Kind: User}, Facts{OrgExists: true, RepoExists: true, OrgRole: RoleOwner}, Create); d.Allow {
		t.Errorf("create over an existing repository allowed: %+v", d)
	}
}

func TestEffective(t *testing.T) {
	tests := []struct {
		p    Principal
		f    Facts
		want Perm
	}{
		{Principal{Kind: User}, Facts{RepoExists: true, Grant: PermWrite, OrgRole: RoleMember}, PermWrite},
		{Principal{Kind: User}, Facts{RepoExists: true, Grant: PermRead, OrgRole: RoleAdmin}, PermAdmin},
		{Principal{Kind: User}, Facts{RepoExists: true, Public: true}, PermRead},
		{Principal{Kind: User}, Facts{RepoExists: true, Public: true, Grant: PermAdmin}, PermAdmin},
		{Principal{Kind: DeployKey, BoundHere: true, CanWrite: true}, Facts{RepoExists: true, OrgRole: RoleOwner, Grant: PermAdmin}, PermWrite},
		{Principal{Kind: Anonymous}, Facts{RepoExists: true, OrgRole: RoleOwner}, PermNone},
		{Principal{Kind: User, SiteAdmin: true}, Facts{RepoExists: false}, PermNone},
	}
	for _, tt := range tests {
		if got := Effective(tt.p, tt.f); got != tt.want {
			t.Errorf("Effective(%+v, %+v) = %v, want %v", tt.p, tt.f, got, tt.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	for _, p := range []string{"refs/heads/main", "refs/heads/release/*", "refs/tags/*", "refs/heads/v[0-9]*"} {
		if err := CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "main", "refs/", "refs/heads/", "refs//x", "refs/heads/../x", "refs/heads/a b", "refs/heads/[", "refs/heads/x\n", "-refs/heads/x", "refs/heads/a:b"} {
		if err := CheckPattern(p); err == nil {
			t.Errorf("CheckPattern(%q) accepted", p)
		}
	}
	tests := []struct {
		ref  string
		want bool
	}{
		{"refs/heads/main", true},
		{"refs/heads/master", true},
		{"refs/heads/release/1.0", true},
		{"refs/heads/release/1.0/hotfix", false},
		{"refs/heads/mainline", false},
		{"refs/heads/feature", false},
	}
	pats := append([]string{"refs/heads/release/*"}, DefaultProtected...)
	for _, tt := range tests {
		if got := Protected(pats, tt.ref); got != tt.want {
			t.Errorf("Protected(%q) = %v", tt.ref, got)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"read", "write", "admin"} {
		p, err := ParsePerm(s)
		if err != nil || p.String() != s {
			t.Errorf("ParsePerm(%q) = %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"owner", "admin", "member"} {
		r, err := ParseRole(s)
		if err != nil || r.String() != s {
			t.Errorf("ParseRole(%q) = %v, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "write "} {
		if _, err := ParsePerm(s); err == nil {
			t.Errorf("ParsePerm(%q) accepted", s)
		}
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

// TestForwardedCarriesWriteAtMost: whatever a user may do on the origin,
// a push a neighbour forwarded for them is a writer's push.
func TestForwardedCarriesWriteAtMost(t *testing.T) {
	site := Principal{Kind: User, SiteAdmin: true, Forwarded: true}
	user := Principal{Kind: User, Forwarded: true}
	repo := func(role Role, grant Perm) Facts {
		return Facts{OrgExists: true, RepoExists: true, OrgRole: role, Grant: grant}
	}
	protectedMain := RefUpdate{Ref: "refs/heads/main", Protected: true}
	deleteMain := RefUpdate{Ref: "refs/heads/main", Protected: true, Delete: true}
	tests := []struct {
		name  string
		p     Principal
		f     Facts
		a     Action
		ref   *RefUpdate
		allow bool
	}{
		{"site admin pushes", site, repo(RoleNone, PermNone), Push, nil, true},
		{"site admin force-pushes protected main", site, repo(RoleNone, PermNone), Push, &protectedMain, false},
		{"site admin deletes protected main", site, repo(RoleNone, PermNone), Push, &deleteMain, false},
		{"repo admin force-pushes protected main", user, repo(RoleNone, PermAdmin), Push, &protectedMain, false},
		{"org owner deletes protected main", user, repo(RoleOwner, PermNone), Push, &deleteMain, false},
		{"writer fast-forwards main", user, repo(RoleNone, PermWrite), Push, &RefUpdate{Ref: "refs/heads/main", Protected: true, FastForward: true}, true},
		{"reader pushes", user, repo(RoleNone, PermRead), Push, nil, false},
		{"site admin creates", site, Facts{OrgExists: true}, Create, nil, false},
		{"org owner creates", user, Facts{OrgExists: true, OrgRole: RoleOwner}, Create, nil, false},
		{"site admin manages the repo", site, repo(RoleNone, PermNone), ManageRepo, nil, false},
		{"org owner deletes the repo", user, repo(RoleOwner, PermAdmin), DeleteRepo, nil, false},
		{"org owner manages members", user, repo(RoleOwner, PermNone), ManageMembers, nil, false},
		{"site admin deletes the org", site, repo(RoleNone, PermNone), DeleteOrg, nil, false},
	}
	for _, tt := range tests {
		d := Decide(tt.p, tt.f, tt.a)
		if tt.ref != nil {
			d = DecideRef(tt.p, tt.f, *tt.ref)
		}
		if d.Allow != tt.allow || d.Perm > PermWrite {
			t.Errorf("%s: %+v, want allow=%v and write at most", tt.name, d, tt.allow)
		}
	}
	if d := DecideRef(site, repo(RoleNone, PermNone), deleteMain); !strings.Contains(d.Reason, "forwarded by a neighbour") {
		t.Errorf("the refusal does not say why: %q", d.Reason)
	}
	if d := Decide(site, Facts{OrgExists: true}, Create); d.Hidden || !strings.Contains(d.Reason, "never creates") {
		t.Errorf("a site admin's forwarded create: %+v", d)
	}
}
