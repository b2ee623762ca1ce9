package admin

import (
	"context"
	"strings"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/store"
)

// CreateOrg creates an organisation, optionally with its first owner.
func (s *Service) CreateOrg(ctx context.Context, name, owner string) (store.Org, error) {
	if err := names.Check(names.Org, name); err != nil {
		return store.Org{}, err
	}
	if owner != "" {
		if err := names.Check(names.User, owner); err != nil {
			return store.Org{}, err
		}
	}
	o, err := s.Store.CreateOrg(ctx, s.Actor, name, owner)
	return o, s.takesEffect(ctx, err)
}

// Orgs lists every organisation.
func (s *Service) Orgs(ctx context.Context) ([]store.Org, error) { return s.Store.Orgs(ctx) }

// DeleteOrg deletes an organisation; with force, its repositories go to
// the trash with it.
func (s *Service) DeleteOrg(ctx context.Context, name string, force bool) ([]Trashed, error) {
	if err := names.Check(names.Org, name); err != nil {
		return nil, err
	}
	var moved []Trashed
	_, err := s.Store.DeleteOrg(ctx, s.Actor, name, force, func(rs []store.Repo) error {
		now := s.Now()
		for _, r := range rs {
			p, err := s.Disk.MoveToTrash(r.Org, r.Name, now)
			if err != nil {
				return err
			}
			moved = append(moved, Trashed{Repo: r.FullName(), Path: p})
		}
		return nil
	})
	if err != nil {
		s.restore(moved)
		return nil, err
	}
	return moved, s.takesEffect(ctx, nil)
}

// restore puts trashed repositories back after a failed transaction.
func (s *Service) restore(moved []Trashed) {
	for _, t := range moved {
		org, repo, _ := strings.Cut(t.Repo, "/")
		s.Disk.Restore(t.Path, org, repo)
	}
}

// SetMember adds a user to an organisation or changes their role.
func (s *Service) SetMember(ctx context.Context, org, user, role string) error {
	if err := checkOrgUser(org, user); err != nil {
		return err
	}
	if _, err := authz.ParseRole(role); err != nil {
		return err
	}
	// A new role may be a lesser one.
	return s.takesEffect(ctx, s.Store.SetMember(ctx, s.Actor, org, user, role))
}

// RemoveMember takes a user out of an organisation.
func (s *Service) RemoveMember(ctx context.Context, org, user string) error {
	if err := checkOrgUser(org, user); err != nil {
		return err
	}
	return s.takesEffect(ctx, s.Store.RemoveMember(ctx, s.Actor, org, user))
}

// Members lists an organisation's members.
func (s *Service) Members(ctx context.Context, org string) ([]store.Member, error) {
	if err := names.Check(names.Org, org); err != nil {
		return nil, err
	}
	return s.Store.Members(ctx, org)
}

func checkOrgUser(org, user string) error {
	if err := names.Check(names.Org, org); err != nil {
		return err
	}
	return names.Check(names.User, user)
}
