// Package replkey is cpm's replication key: the ssh key
// (DATA/id_ed25519_replication) this node reaches backups and neighbours
// with, made at init, published to neighbours by discovery, and rotated
// without locking anyone out (Rotator). cpm-admin and the workers (which
// carry a rotation on when a server comes back) both rotate through it;
// a lock file keeps them from stepping on each other.
package replkey

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"cpm/internal/datadir"
	"cpm/internal/sshkey"
)

// PublicKey is cpm's replication key, to install on targets.
func PublicKey(dir datadir.Dir) (string, error) {
	b, err := os.ReadFile(dir.ReplicationKey() + ".pub")
	if err != nil {
		return "", fmt.Errorf("replication key: %w (run cpm-admin init)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Ensure makes the replication key if the data directory has none.
func Ensure(dir datadir.Dir) error {
	if _, err := os.Stat(dir.ReplicationKey()); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := sshkey.Generate(dir.ReplicationKey(), "cpm replication")
	return err
}
