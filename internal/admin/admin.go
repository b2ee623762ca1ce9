// Package admin carries out cpm-admin's commands: it validates names and
// keys, then changes the store and the repositories on disk together, so
// that a failure leaves neither half-done.
package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"cpm/internal/atomicfile"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/pins"
	"cpm/internal/replkey"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Service is one admin session against a data directory.
type Service struct {
	Store *store.Store
	Disk  repos.Root
	Actor store.Actor
	Now   func() time.Time
	// FreeMargin is the free_space_margin setting for syncs run on
	// demand (New sets transfer.DefaultFreeMargin).
	FreeMargin int64
	// self is this node's row in its cluster (PlaceAs; ID 0 outside one).
	self store.Server
}

// Init creates the data directory and database, or brings an existing one
// up to date, rewrites the pinned host keys, and repairs the settings and
// hooks of every repository. It is safe to run
// any number of times. It returns how many repositories had their hooks
// (re)installed.
//
// database is the database setting: "" for SQLite in the data directory
// (or the PostgreSQL database an earlier init recorded), or a postgres://
// URL, which is recorded in the data directory for cpm-hook.
func Init(ctx context.Context, dir datadir.Dir, database, hookBin string) (*store.Store, int, error) {
	if err := dir.Ensure(); err != nil {
		return nil, 0, err
	}
	if err := replkey.Ensure(dir); err != nil {
		return nil, 0, err
	}
	if database == "" {
		var err error
		if database, err = dir.Recorded(); err != nil {
			return nil, 0, err
		}
	}
	st, err := store.InitAt(ctx, database, dir.DB())
	if err != nil {
		return nil, 0, err
	}
	if err := notLeavingData(ctx, dir, database, st); err != nil {
		st.Close()
		return nil, 0, err
	}
	if database != "" {
		if err := atomicfile.Write(dir.DatabaseFile(), []byte(database+"\n"), 0o600); err != nil {
			st.Close()
			return nil, 0, err
		}
	}
	if err := st.SetNodeName(ctx, defaultNodeName()); err != nil {
		st.Close()
		return nil, 0, err
	}
	// Pins as this version writes them (per server), whatever wrote them.
	svc := New(st, repos.Root{}, store.Actor{})
	if err := pins.Write(ctx, st, dir); err != nil {
		st.Close()
		return nil, 0, err
	}
	// The files sshd reads for certificates (OpenSSH mode), even before
	// the first authority: a missing RevokedKeys file refuses every key.
	if err := svc.WriteTrustedCAs(ctx, dir); err != nil {
		st.Close()
		return nil, 0, err
	}
	root := repos.RootOf(dir, hookBin)
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

// New is a service acting as actor on the store st and the repositories
// under disk.
func New(st *store.Store, disk repos.Root, actor store.Actor) *Service {
	return &Service{Store: st, Disk: disk, Actor: actor, Now: time.Now, FreeMargin: transfer.DefaultFreeMargin}
}

// Open opens an initialised data directory.
func Open(ctx context.Context, dir datadir.Dir, database string, actor store.Actor, hookBin string) (*Service, error) {
	database, err := dir.Database(database)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenAt(ctx, database, dir.DB())
	if err != nil {
		return nil, err
	}
	return New(st, repos.RootOf(dir, hookBin), actor), nil
}

// Close releases the store.
func (s *Service) Close() error { return s.Store.Close() }

// Trashed says where a deleted repository went.
type Trashed struct {
	Repo string `json:"repo"`
	Path string `json:"path"` // "" when it was not on disk
}

// Audit returns the newest audit entries first.
func (s *Service) Audit(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	if limit < 0 {
		return nil, errors.New("--limit must not be negative")
	}
	return s.Store.Audit(ctx, limit)
}

// notLeavingData refuses to move a data directory whose SQLite database
// holds users or repositories onto a PostgreSQL database that holds none:
// the node would wake up knowing nobody. migrate-store copies them first.
func notLeavingData(ctx context.Context, dir datadir.Dir, database string, st *store.Store) error {
	recorded, err := dir.Recorded()
	if err != nil || database == "" || recorded != "" {
		return err
	}
	if _, err := os.Stat(dir.DB()); err != nil {
		return nil // a new data directory
	}
	if users, err := st.Users(ctx); err != nil || len(users) > 0 {
		return err
	}
	old, err := store.Open(ctx, dir.DB())
	if err != nil {
		return fmt.Errorf("read %s before moving to PostgreSQL: %w", dir.DB(), err)
	}
	defer old.Close()
	users, err := old.Users(ctx)
	if err != nil {
		return err
	}
	repos, err := old.Repos(ctx, "")
	if err != nil {
		return err
	}
	if len(users) > 0 || len(repos) > 0 {
		return fmt.Errorf("%s holds %d users and %d repositories and the PostgreSQL database none: copy them with cpm-admin migrate-store --to URL first", dir.DB(), len(users), len(repos))
	}
	return nil
}
