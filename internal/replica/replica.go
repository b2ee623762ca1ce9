// Package replica keeps a node's copies of its peers' authorization
// metadata, one SQLite database per origin (DATA/peers/ORIGIN.db, same
// schema as the node's own), and answers which origin a replicated
// repository belongs to. Reads of a replica are decided against its
// origin's copy, so a user gets the same answer on every node; the node's
// own database never mixes with a peer's.
package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"cpm/internal/names"
	"cpm/internal/store"
)

// Set is the peers' metadata copies under one directory.
type Set struct {
	dir  string
	mu   sync.Mutex
	open map[string]opened
}

type opened struct {
	st   *store.Store
	file os.FileInfo // to notice the file being removed or replaced
}

// New is the set kept in dir (created on first write).
func New(dir string) *Set { return &Set{dir: dir, open: map[string]opened{}} }

// Close closes every open copy.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, o := range s.open {
		errs = append(errs, o.st.Close())
		delete(s.open, k)
	}
	return errors.Join(errs...)
}

func (s *Set) path(origin string) string {
	return filepath.Join(s.dir, strings.ToLower(origin)+".db")
}

// Store opens (creating it if create is set) the copy of origin's
// metadata.
func (s *Set) Store(ctx context.Context, origin string, create bool) (*store.Store, error) {
	if err := names.Check(names.User, origin); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, path := strings.ToLower(origin), s.path(origin)
	if o, ok := s.open[key]; ok {
		// The copy is dropped when its server is removed (Forget), possibly
		// by another process: a handle on a removed file would serve, or
		// take, metadata that nobody else sees.
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, o.file) {
			return o.st, nil
		}
		o.st.Close()
		delete(s.open, key)
	}
	var st *store.Store
	var err error
	if create {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
		st, err = store.Init(ctx, path)
	} else {
		st, err = store.Open(ctx, path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		st.Close()
		return nil, err
	}
	s.open[key] = opened{st: st, file: fi}
	return st, nil
}

// Forget drops origin's metadata: its replicas stay on disk, and nobody
// can read them here any more.
func (s *Set) Forget(origin string) error {
	if err := names.Check(names.User, origin); err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, path := strings.ToLower(origin), s.path(origin)
	if o, ok := s.open[key]; ok {
		o.st.Close()
		delete(s.open, key)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("forget %s: %w", origin, err)
		}
	}
	return nil
}

// Origins lists the origins that have delivered metadata here.
func (s *Set) Origins() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".db"); ok && names.Check(names.User, n) == nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ErrNotReplica means no origin has delivered the repository here.
var ErrNotReplica = errors.New("not a replica")

// Find returns the origin whose metadata holds ORG/REPO, with its copy.
// Origins are asked in name order; a repository claimed by two (which
// Claimant keeps from happening) belongs to the first.
func (s *Set) Find(ctx context.Context, org, repo string) (string, *store.Store, error) {
	origins, err := s.Origins()
	if err != nil {
		return "", nil, err
	}
	for _, o := range origins {
		st, err := s.Store(ctx, o, false)
		if err != nil {
			return "", nil, err
		}
		f, err := st.RepoFacts(ctx, 0, org, repo)
		if err != nil {
			return "", nil, err
		}
		if f.RepoExists {
			return o, st, nil
		}
	}
	return "", nil, ErrNotReplica
}

// Owner finds whom a key speaks for in any origin's metadata: a key that
// is registered only at an origin still authenticates here, for that
// origin's replicas.
func (s *Set) Owner(ctx context.Context, fingerprint string) (store.KeyOwner, error) {
	origins, err := s.Origins()
	if err != nil {
		return store.KeyOwner{}, err
	}
	for _, o := range origins {
		st, err := s.Store(ctx, o, false)
		if err != nil {
			return store.KeyOwner{}, err
		}
		owner, err := st.KeyOwnerByFingerprint(ctx, fingerprint)
		if err == nil {
			return owner, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.KeyOwner{}, err
		}
	}
	return store.KeyOwner{}, store.ErrNotFound
}
