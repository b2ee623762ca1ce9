package admin

import (
	"context"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/provision"
	"cpm/internal/store"
)

// CreateRepo records ORG/REPO and creates its bare repository on disk with
// HEAD on main and the default protected refs (see provision.Repo).
func (s *Service) CreateRepo(ctx context.Context, path string, public bool, description string) (store.Repo, string, error) {
	r, p, err := provision.Repo(ctx, s.Store, s.Disk, s.Actor, path, public, description)
	return r, p, s.takesEffect(ctx, err)
}

// SetRepo makes a repository public or private and changes its
// description (nil leaves either as it is), in the database and in the
// repository's description file.
func (s *Service) SetRepo(ctx context.Context, path string, public *bool, description *string) (store.Repo, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Repo{}, err
	}
	if description != nil {
		if err := provision.CheckDescription(*description); err != nil {
			return store.Repo{}, err
		}
	}
	r, err := s.Store.SetRepo(ctx, s.Actor, rp.Org, rp.Repo, public, description, func(r store.Repo) error {
		if description == nil {
			return nil
		}
		return s.Disk.SetDescription(r.Org, r.Name, *description)
	})
	// Private again takes anonymous and every reader's access away.
	return r, s.takesEffect(ctx, err)
}

// Repos lists the repositories of one organisation, or all of them.
func (s *Service) Repos(ctx context.Context, org string) ([]store.Repo, error) {
	if org != "" {
		if err := names.Check(names.Org, org); err != nil {
			return nil, err
		}
	}
	return s.Store.Repos(ctx, org)
}

// DeleteRepo forgets ORG/REPO and moves it to the trash.
func (s *Service) DeleteRepo(ctx context.Context, path string) (Trashed, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return Trashed{}, err
	}
	var moved []Trashed
	r, err := s.Store.DeleteRepo(ctx, s.Actor, rp.Org, rp.Repo, func(r store.Repo) error {
		p, err := s.Disk.MoveToTrash(r.Org, r.Name, s.Now())
		if err != nil {
			return err
		}
		moved = append(moved, Trashed{Repo: r.FullName(), Path: p})
		return nil
	})
	if err != nil {
		s.restore(moved)
		return Trashed{}, err
	}
	if err := s.takesEffect(ctx, nil); err != nil {
		return Trashed{}, err
	}
	if len(moved) == 0 {
		return Trashed{Repo: r.FullName()}, nil
	}
	return moved[0], nil
}

// Grant gives a user read, write or admin on a repository.
func (s *Service) Grant(ctx context.Context, path, user, perm string) error {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return err
	}
	if err := names.Check(names.User, user); err != nil {
		return err
	}
	if _, err := authz.ParsePerm(perm); err != nil {
		return err
	}
	// A grant may replace a greater one.
	return s.takesEffect(ctx, s.Store.Grant(ctx, s.Actor, rp.Org, rp.Repo, user, perm))
}

// Revoke takes a user's grant on a repository away.
func (s *Service) Revoke(ctx context.Context, path, user string) error {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return err
	}
	if err := names.Check(names.User, user); err != nil {
		return err
	}
	return s.takesEffect(ctx, s.Store.Revoke(ctx, s.Actor, rp.Org, rp.Repo, user))
}

// Protect adds a protected ref pattern to a repository.
func (s *Service) Protect(ctx context.Context, path, pattern string) error {
	rp, err := repoAndPattern(path, pattern)
	if err != nil {
		return err
	}
	return s.Store.Protect(ctx, s.Actor, rp.Org, rp.Repo, pattern)
}

// Unprotect removes a protected ref pattern from a repository.
func (s *Service) Unprotect(ctx context.Context, path, pattern string) error {
	rp, err := repoAndPattern(path, pattern)
	if err != nil {
		return err
	}
	return s.Store.Unprotect(ctx, s.Actor, rp.Org, rp.Repo, pattern)
}

func repoAndPattern(path, pattern string) (names.RepoPath, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return names.RepoPath{}, err
	}
	return rp, authz.CheckPattern(pattern)
}
