package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Promotion is what Promote did.
type Promotion struct {
	From    string   `json:"from"`
	Repos   int      `json:"repositories"`
	Missing []string `json:"missing,omitempty"` // in the database, not in the backup: created empty
	Servers []string `json:"servers_held,omitempty"`
	// Self are the origin's entries for this very backup: dropped.
	Self     []string `json:"servers_removed,omitempty"`
	Snapshot string   `json:"snapshot"`
	// Fenced is the authorized_keys file in which the old main's keys
	// were replaced (FencedKeys of them); FenceError says why not.
	Fenced     string `json:"fenced_authorized_keys,omitempty"`
	FencedKeys int    `json:"fenced_keys"`
	FenceError string `json:"fence_error,omitempty"`
}

// ErrNotABackup means the directory holds no database snapshot.
var ErrNotABackup = errors.New("no database snapshot")

// Promote turns a backup's copy into a full server in dir: the database
// snapshot the origin shipped (from/.cpm/cpm.db, written with SQLite's
// online backup) becomes dir's database, and every repository it names
// moves from from/ORG/REPO.git into dir's repository root, with cpm's
// settings and hooks. from may be dir itself. The origin's servers are
// kept but held (blocked) until an operator reviews them: one of them is
// this very backup, which is dropped instead. A repository the backup
// lacks is an error, unless force creates it empty.
//
// Promote fences the old main: from/.cpm/promoted tells it to stop, and
// its keys in the backup account's authorized_keys (authorizedKeys, or
// the one the origin knew for this backup) can only say so any more.
func Promote(ctx context.Context, dir datadir.Dir, from, hookBin string, force bool, authorizedKeys string, actor store.Actor) (Promotion, error) {
	from, err := filepath.Abs(from)
	if err != nil {
		return Promotion{}, err
	}
	p := Promotion{From: from, Snapshot: filepath.Join(from, transfer.SnapshotDir, transfer.SnapshotName)}
	if _, err := os.Stat(p.Snapshot); err != nil {
		if where, perr := os.ReadFile(filepath.Join(from, transfer.SnapshotDir, transfer.DatabasePointerName)); perr == nil {
			// The origin's metadata is in PostgreSQL, not here: the backup
			// holds repositories only.
			return p, fmt.Errorf("%w at %s: this backup holds repositories only; the metadata lives in PostgreSQL at %s: start a node on that database (cpm-admin init --database URL) and restore the repositories from here (cpm-admin sync pull)", ErrNotABackup, p.Snapshot, strings.TrimSpace(string(where)))
		}
		return p, fmt.Errorf("%w at %s: not a cpm backup, or it never received one", ErrNotABackup, p.Snapshot)
	}
	if _, err := os.Stat(dir.DB()); err == nil {
		return p, fmt.Errorf("%s already has a database: promote into a new data directory", dir)
	}
	if err := dir.Ensure(); err != nil {
		return p, err
	}
	st, rs, err := restoreSnapshot(ctx, dir, p.Snapshot)
	if err != nil {
		return p, err
	}
	for _, r := range rs {
		if fi, err := os.Lstat(filepath.Join(from, r.Org, r.Name+".git")); err != nil || !fi.IsDir() {
			p.Missing = append(p.Missing, r.FullName())
		}
	}
	if len(p.Missing) > 0 && !force {
		st.Close()
		removeDB(dir)
		return p, fmt.Errorf("the backup lacks %d of %d repositories (%s…); promote with --force to create them empty", len(p.Missing), len(rs), p.Missing[0])
	}
	// From here on this node is a main: the old one must stop writing.
	notice := promotionNotice(time.Now(), dir.String())
	if err := writePromotedMarker(from, notice); err != nil {
		st.Close()
		removeDB(dir)
		return p, err
	}
	err = p.takeOver(ctx, st, repos.RootOf(dir, hookBin), rs, notice, authorizedKeys, actor)
	st.Close()
	if err != nil {
		return p, err
	}
	// Init gives the new server its own replication key and known_hosts
	// for the servers it holds, and checks every repository's hooks.
	st, _, err = Init(ctx, dir, "", hookBin)
	if err != nil {
		return p, err
	}
	defer st.Close()
	return p, st.Record(ctx, actor, "promote", from, map[string]any{"repositories": p.Repos, "missing": len(p.Missing)})
}

// restoreSnapshot makes the backup's snapshot dir's database and reads
// its repositories. On failure nothing is left behind, and promote can
// run again.
func restoreSnapshot(ctx context.Context, dir datadir.Dir, snapshot string) (st *store.Store, repos []store.Repo, err error) {
	if err := copyFile(snapshot, dir.DB()); err != nil {
		return nil, nil, fmt.Errorf("promote: %w", err)
	}
	defer func() {
		if err != nil {
			if st != nil {
				st.Close()
			}
			removeDB(dir)
		}
	}()
	if st, err = store.Open(ctx, dir.DB()); err != nil {
		return nil, nil, err
	}
	if err = st.IntegrityCheck(ctx); err != nil {
		return st, nil, err
	}
	repos, err = st.Repos(ctx, "")
	return st, repos, err
}

func removeDB(dir datadir.Dir) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(dir.DB() + suffix)
	}
}

// takeOver is past the point of no return: it moves the backup's
// repositories into root with cpm's settings and hooks (creating the
// missing ones empty), drops the origin's entry for this backup, fences
// the old main's key with notice, and holds the other servers.
func (p *Promotion) takeOver(ctx context.Context, st *store.Store, root repos.Root, rs []store.Repo, notice, authorizedKeys string, actor store.Actor) error {
	for _, r := range rs {
		src := filepath.Join(p.From, r.Org, r.Name+".git")
		dst, err := root.Path(r.Org, r.Name)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(src); err != nil {
			if _, err := root.Create(ctx, r.Org, r.Name, r.Description); err != nil {
				return err
			}
			continue
		}
		if err := move(src, dst); err != nil {
			return fmt.Errorf("promote %s: %w", r.FullName(), err)
		}
		os.Remove(filepath.Dir(src)) // the organisation's folder, once empty
		if err := root.Adopt(ctx, r.Org, r.Name); err != nil {
			return err
		}
		p.Repos++
	}
	servers, err := st.Servers(ctx)
	if err != nil {
		return err
	}
	p.Self = selfServers(servers, p.From)
	for _, s := range servers {
		if !slices.Contains(p.Self, s.Name) {
			p.Servers = append(p.Servers, s.Name)
			continue
		}
		if authorizedKeys == "" {
			authorizedKeys = s.AuthorizedKeys
		}
		if err := st.RemoveServer(ctx, actor, s.Name); err != nil {
			return err
		}
	}
	p.fence(p.From, authorizedKeys, notice)
	return st.HoldServers(ctx, actor, "held at promote: review it, then cpm-admin sync retry")
}

// fence replaces the old main's keys in the authorized_keys file ak of
// the backup account; a failure is reported, not fatal: the marker fences
// the old main too.
func (p *Promotion) fence(from, ak, notice string) {
	path, err := authorizedKeysOf(from, ak)
	if err == nil {
		p.Fenced = path
		p.FencedKeys, err = fenceOldMain(from, path, notice)
	}
	if err != nil {
		p.FenceError = err.Error()
	}
}

// move renames src to dst, copying when they are on different file
// systems.
func move(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists", dst)
	}
	err := os.Rename(src, dst)
	var le *os.LinkError
	if !errors.As(err, &le) || !errors.Is(le.Err, syscall.EXDEV) {
		return err
	}
	return os.CopyFS(dst, os.DirFS(src))
}

// copyFile writes src to dst (mode 0600) through a temporary file.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".promote-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
