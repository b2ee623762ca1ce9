package admin

import (
	"context"
	"fmt"
	"io"
	"os"

	"cpm/internal/names"
	"cpm/internal/sshkey"
	"cpm/internal/store"
)

// ReadKey reads one public key from r (a file or stdin), bounded in size.
func ReadKey(r io.Reader) (sshkey.Key, error) {
	body, err := io.ReadAll(io.LimitReader(r, sshkey.MaxSize+1))
	if err != nil {
		return sshkey.Key{}, fmt.Errorf("read key: %w", err)
	}
	return sshkey.Parse(body)
}

// ReadKeyFile reads a key from path, or from stdin when path is "-".
func ReadKeyFile(path string, stdin io.Reader) (sshkey.Key, error) {
	if path == "-" {
		return ReadKey(stdin)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return sshkey.Key{}, fmt.Errorf("read key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return sshkey.Key{}, fmt.Errorf("read key: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return sshkey.Key{}, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	k, err := ReadKey(f)
	if err != nil {
		return sshkey.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func newKey(k sshkey.Key) store.NewKey {
	return store.NewKey{Fingerprint: k.Fingerprint, Type: k.Type, PublicKey: k.Line(), Comment: k.Comment}
}

// AddUser creates a user, with a first key when key is not nil.
func (s *Service) AddUser(ctx context.Context, name string, admin bool, key *sshkey.Key) (store.User, error) {
	if err := names.Check(names.User, name); err != nil {
		return store.User{}, err
	}
	var nk *store.NewKey
	if key != nil {
		k := newKey(*key)
		nk = &k
	}
	u, err := s.Store.CreateUser(ctx, s.Actor, name, admin, nk)
	return u, s.takesEffect(ctx, err)
}

// Users lists every user.
func (s *Service) Users(ctx context.Context) ([]store.User, error) { return s.Store.Users(ctx) }

// RemoveUser removes a user with their keys, memberships and grants.
func (s *Service) RemoveUser(ctx context.Context, name string) error {
	if err := names.Check(names.User, name); err != nil {
		return err
	}
	return s.takesEffect(ctx, s.Store.DeleteUser(ctx, s.Actor, name))
}

// AddKey registers another key for a user.
func (s *Service) AddKey(ctx context.Context, user string, key sshkey.Key) (store.Key, error) {
	if err := names.Check(names.User, user); err != nil {
		return store.Key{}, err
	}
	k, err := s.Store.AddUserKey(ctx, s.Actor, user, newKey(key))
	return k, s.takesEffect(ctx, err)
}

// Keys lists one user's keys, or every user's when user is "".
func (s *Service) Keys(ctx context.Context, user string) ([]store.Key, error) {
	if user != "" {
		if err := names.Check(names.User, user); err != nil {
			return nil, err
		}
	}
	return s.Store.UserKeys(ctx, user)
}

// RemoveKey removes a user's key by fingerprint.
func (s *Service) RemoveKey(ctx context.Context, fingerprint string) (store.Key, error) {
	fp, err := sshkey.NormalizeFingerprint(fingerprint)
	if err != nil {
		return store.Key{}, err
	}
	k, err := s.Store.DeleteUserKey(ctx, s.Actor, fp)
	return k, s.takesEffect(ctx, err)
}

// AddDeployKey binds a key to one repository.
func (s *Service) AddDeployKey(ctx context.Context, path string, key sshkey.Key, write bool) (store.Key, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Key{}, err
	}
	k, err := s.Store.AddDeployKey(ctx, s.Actor, rp.Org, rp.Repo, newKey(key), write)
	return k, s.takesEffect(ctx, err)
}

// DeployKeys lists a repository's deploy keys.
func (s *Service) DeployKeys(ctx context.Context, path string) ([]store.Key, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return nil, err
	}
	return s.Store.DeployKeys(ctx, rp.Org, rp.Repo)
}

// RemoveDeployKey removes a deploy key by fingerprint.
func (s *Service) RemoveDeployKey(ctx context.Context, fingerprint string) (store.Key, error) {
	fp, err := sshkey.NormalizeFingerprint(fingerprint)
	if err != nil {
		return store.Key{}, err
	}
	k, err := s.Store.DeleteDeployKey(ctx, s.Actor, fp)
	return k, s.takesEffect(ctx, err)
}
