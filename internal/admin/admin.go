// Package admin carries out cpm-admin's commands: it validates names and
// keys, then changes the store and the repositories on disk together, so
// that a failure leaves neither half-done.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"cpm/internal/authz"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/sshkey"
	"cpm/internal/store"
)

// Service is one admin session against a data directory.
type Service struct {
	Store *store.Store
	Disk  repos.Root
	Actor store.Actor
	Now   func() time.Time
}

// Init creates the data directory and database, or brings an existing one
// up to date, rewrites the pinned host keys, and repairs the settings and
// hooks of every repository. It is safe to run
// any number of times. It returns how many repositories had their hooks
// (re)installed.
func Init(ctx context.Context, dir datadir.Dir, hookBin string) (*store.Store, int, error) {
	if err := dir.Ensure(); err != nil {
		return nil, 0, err
	}
	if _, err := os.Stat(dir.ReplicationKey()); os.IsNotExist(err) {
		if _, err := sshkey.Generate(dir.ReplicationKey(), "cpm replication"); err != nil {
			return nil, 0, err
		}
	}
	st, err := store.Init(ctx, dir.DB())
	if err != nil {
		return nil, 0, err
	}
	if err := st.SetNodeName(ctx, defaultNodeName()); err != nil {
		st.Close()
		return nil, 0, err
	}
	// Pins as this version writes them (per server), whatever wrote them.
	if err := New(st, repos.Root{}, store.Actor{}).WriteKnownHosts(ctx, dir); err != nil {
		st.Close()
		return nil, 0, err
	}
	root := Root(dir, hookBin)
	rs, err := st.Repos(ctx, "")
	if err != nil {
		st.Close()
		return nil, 0, err
	}
	repaired := 0
	for _, r := range rs {
		if _, err := root.Open(r.Org, r.Name); err != nil {
			continue // missing on disk: doctor reports it; nothing to repair here
		}
		// Settings a newer cpm adds (partial clone, say) reach old
		// repositories here too; the count is of reinstalled hooks.
		_, hooks, err := root.Repair(ctx, r.Org, r.Name)
		if err != nil {
			st.Close()
			return nil, 0, err
		}
		if hooks {
			repaired++
		}
	}
	return st, repaired, nil
}

// defaultNodeName is the host name when it is a valid cpm name.
func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil {
		return "cpm"
	}
	h, _, _ = strings.Cut(h, ".")
	if names.Check(names.User, h) != nil {
		return "cpm"
	}
	return h
}

// Root is the repository root of a data directory, with hooks calling
// hookBin.
func Root(dir datadir.Dir, hookBin string) repos.Root {
	return repos.Root{
		Dir:   dir.Repos(),
		Trash: dir.Trash(),
		Hooks: repos.Hooks{Bin: hookBin, DataDir: dir.String()},
	}
}

// New is a service acting as actor on the store st and the repositories
// under disk.
func New(st *store.Store, disk repos.Root, actor store.Actor) *Service {
	return &Service{Store: st, Disk: disk, Actor: actor, Now: time.Now}
}

// Open opens an initialised data directory.
func Open(ctx context.Context, dir datadir.Dir, actor store.Actor, hookBin string) (*Service, error) {
	st, err := store.Open(ctx, dir.DB())
	if err != nil {
		return nil, err
	}
	return New(st, Root(dir, hookBin), actor), nil
}

// Close releases the store.
func (s *Service) Close() error { return s.Store.Close() }

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
	return s.Store.CreateUser(ctx, s.Actor, name, admin, nk)
}

// Users lists every user.
func (s *Service) Users(ctx context.Context) ([]store.User, error) { return s.Store.Users(ctx) }

// RemoveUser removes a user with their keys, memberships and grants.
func (s *Service) RemoveUser(ctx context.Context, name string) error {
	if err := names.Check(names.User, name); err != nil {
		return err
	}
	return s.Store.DeleteUser(ctx, s.Actor, name)
}

// AddKey registers another key for a user.
func (s *Service) AddKey(ctx context.Context, user string, key sshkey.Key) (store.Key, error) {
	if err := names.Check(names.User, user); err != nil {
		return store.Key{}, err
	}
	return s.Store.AddUserKey(ctx, s.Actor, user, newKey(key))
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
	return s.Store.DeleteUserKey(ctx, s.Actor, fp)
}

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
	return s.Store.CreateOrg(ctx, s.Actor, name, owner)
}

// Orgs lists every organisation.
func (s *Service) Orgs(ctx context.Context) ([]store.Org, error) { return s.Store.Orgs(ctx) }

// Trashed says where a deleted repository went.
type Trashed struct {
	Repo string `json:"repo"`
	Path string `json:"path"` // "" when it was not on disk
}

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
	return moved, nil
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
	return s.Store.SetMember(ctx, s.Actor, org, user, role)
}

// RemoveMember takes a user out of an organisation.
func (s *Service) RemoveMember(ctx context.Context, org, user string) error {
	if err := checkOrgUser(org, user); err != nil {
		return err
	}
	return s.Store.RemoveMember(ctx, s.Actor, org, user)
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

// maxDescription bounds a repository description.
const maxDescription = 500

func checkDescription(d string) error {
	if len(d) > maxDescription {
		return fmt.Errorf("description longer than %d bytes", maxDescription)
	}
	for _, r := range d {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return errors.New("description must be one line of printable text")
		}
	}
	return nil
}

// CreateRepo records ORG/REPO and creates its bare repository on disk with
// HEAD on main and the default protected refs.
func (s *Service) CreateRepo(ctx context.Context, path string, public bool, description string) (store.Repo, string, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Repo{}, "", err
	}
	if err := checkDescription(description); err != nil {
		return store.Repo{}, "", err
	}
	var dir string
	r, err := s.Store.CreateRepo(ctx, s.Actor, store.NewRepo{
		Org: rp.Org, Name: rp.Repo, Public: public, Description: description,
		Protected: authz.DefaultProtected,
	}, func(r store.Repo) error {
		// The canonical spelling from the database names the directory.
		var err error
		dir, err = s.Disk.Create(ctx, r.Org, r.Name, description)
		return err
	})
	if err != nil {
		if dir != "" {
			// The transaction failed after the repository was made: undo it.
			os.RemoveAll(dir)
		}
		return store.Repo{}, "", err
	}
	return r, dir, nil
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
		if err := checkDescription(*description); err != nil {
			return store.Repo{}, err
		}
	}
	return s.Store.SetRepo(ctx, s.Actor, rp.Org, rp.Repo, public, description, func(r store.Repo) error {
		if description == nil {
			return nil
		}
		return s.Disk.SetDescription(r.Org, r.Name, *description)
	})
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
	return s.Store.Grant(ctx, s.Actor, rp.Org, rp.Repo, user, perm)
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
	return s.Store.Revoke(ctx, s.Actor, rp.Org, rp.Repo, user)
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

// AddDeployKey binds a key to one repository.
func (s *Service) AddDeployKey(ctx context.Context, path string, key sshkey.Key, write bool) (store.Key, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Key{}, err
	}
	return s.Store.AddDeployKey(ctx, s.Actor, rp.Org, rp.Repo, newKey(key), write)
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
	return s.Store.DeleteDeployKey(ctx, s.Actor, fp)
}

// Audit returns the newest audit entries first.
func (s *Service) Audit(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	if limit < 0 {
		return nil, errors.New("--limit must not be negative")
	}
	return s.Store.Audit(ctx, limit)
}
