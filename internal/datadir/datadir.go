// Package datadir names the files and folders under cpm's data directory,
// so that every binary agrees on where things live.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Default is used when neither a flag, the environment nor the config
// file names a data directory.
const Default = "./cpm-data"

// Dir is an absolute data directory.
type Dir string

// New makes dir absolute; the binaries may be started from anywhere and
// hooks run with the repository as their working directory.
func New(dir string) (Dir, error) {
	if dir == "" {
		dir = Default
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data dir %s: %w", dir, err)
	}
	return Dir(abs), nil
}

func (d Dir) String() string { return string(d) }

// DB is the SQLite database.
func (d Dir) DB() string { return filepath.Join(string(d), "cpm.db") }

// DatabaseFile holds the database setting (a postgres:// URL) that the
// data directory was initialised with, mode 0600: cpm-hook, which git
// starts without cpm's settings, reads it there rather than from an
// environment variable that would carry the password into every git
// process.
func (d Dir) DatabaseFile() string { return filepath.Join(string(d), "database") }

// Database resolves the database setting: the one recorded by cpm-admin
// init --database, else "" (SQLite at DB()). A setting given on a command
// must be the recorded one: cpm-hook reads only the file, so a node on
// another database would check pushes against, and record them in, a
// database that is not its own.
func (d Dir) Database(setting string) (string, error) {
	recorded, err := d.Recorded()
	if err != nil || setting == "" || setting == recorded {
		return recorded, err
	}
	if recorded == "" {
		return "", fmt.Errorf("database setting: this data directory is on SQLite (%s); run cpm-admin init --database URL to move it (after migrate-store)", d.DB())
	}
	return "", fmt.Errorf("database setting: not the database recorded in %s, which cpm-hook uses; run cpm-admin init --database URL to change it", d.DatabaseFile())
}

// Recorded is the database recorded by cpm-admin init --database, or ""
// when there is none (SQLite).
func (d Dir) Recorded() (string, error) {
	b, err := os.ReadFile(d.DatabaseFile())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("database setting: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("database setting: %s is empty; run cpm-admin init --database URL", d.DatabaseFile())
	}
	return s, nil
}

// Repos holds the bare repositories as ORG/REPO.git.
func (d Dir) Repos() string { return filepath.Join(string(d), "repos") }

// Trash receives deleted repositories; nothing is ever removed outright.
func (d Dir) Trash() string { return filepath.Join(string(d), "trash") }

// HostKey is the embedded SSH server's private host key.
func (d Dir) HostKey() string { return filepath.Join(string(d), "ssh_host_ed25519_key") }

// ReplicationKey is the private key cpm uses to reach other servers.
func (d Dir) ReplicationKey() string { return filepath.Join(string(d), "id_ed25519_replication") }

// NextReplicationKey is the new replication key while a key rotation is
// under way (see cpm-admin server rotate-key).
func (d Dir) NextReplicationKey() string { return d.ReplicationKey() + ".next" }

// KnownHosts is the file that pins every server's host key.
func (d Dir) KnownHosts() string { return filepath.Join(string(d), "known_hosts") }

// RevokedKeys is the OpenSSH key revocation list of certificates (and
// keys) that no longer authenticate (cpm-admin ca revoke).
func (d Dir) RevokedKeys() string { return filepath.Join(string(d), "revoked_keys.krl") }

// TrustedCAKeys lists the trusted certificate authorities one per line,
// for OpenSSH's TrustedUserCAKeys (cpm-admin ca add writes it).
func (d Dir) TrustedCAKeys() string { return filepath.Join(string(d), "trusted_user_ca_keys") }

// Ensure creates the data directory and its folders, private to the owner.
func (d Dir) Ensure() error {
	for _, p := range []string{string(d), d.Repos(), d.Trash(), d.Locks(), d.Tmp(), d.Dirty(), d.Control()} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	// MkdirAll leaves an existing directory's mode alone; the data dir holds
	// keys and the database, so tighten it if someone loosened it.
	if err := os.Chmod(string(d), 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", d, err)
	}
	return nil
}

// Log is where forced-command sessions log, since their stderr is the
// ssh client's.
func (d Dir) Log() string { return filepath.Join(string(d), "cpm-shell.log") }

// Locks holds per-repository lock files shared by replication and
// maintenance.
func (d Dir) Locks() string { return filepath.Join(string(d), "locks") }

// Tmp holds short-lived files (ref snapshots).
func (d Dir) Tmp() string { return filepath.Join(string(d), "tmp") }

// WakeSocket is where post-receive tells the replication workers that
// there is work.
func (d Dir) WakeSocket() string { return filepath.Join(string(d), "replicate.sock") }

// SyncSocket is where post-receive asks the node's workers to write a
// push into replica nodes before it is acknowledged (internal/syncack).
func (d Dir) SyncSocket() string { return filepath.Join(string(d), "sync.sock") }

// Dirty holds markers for pushes that could not be queued in the
// database; the workers queue them later.
func (d Dir) Dirty() string { return filepath.Join(string(d), "dirty") }

// Peers holds this node's copies of its neighbours' metadata, one
// database per origin (see internal/replica).
func (d Dir) Peers() string { return filepath.Join(string(d), "peers") }

// Control holds ssh control sockets for connections to replication
// targets; private, like the rest of the data dir.
func (d Dir) Control() string { return filepath.Join(string(d), "ssh") }

// NodeFile records, in one line (0644), the name of the cluster node
// this data directory is (cpm-admin init --node-name); without it the
// data directory is a single installation.
func (d Dir) NodeFile() string { return filepath.Join(string(d), "node") }

// NodeName is this data directory's node name in its cluster, "" when it
// is in none: then everything behaves as on a single installation.
func (d Dir) NodeName() (string, error) {
	b, err := os.ReadFile(d.NodeFile())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return "", fmt.Errorf("node name: %s holds no name; run cpm-admin init --node-name N again", d.NodeFile())
	}
	return name, nil
}
