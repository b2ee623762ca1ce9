package node

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"

	"cpm/internal/atomicfile"
	"cpm/internal/certauth"
)

// certChecker checks the certificates of this node's sessions: against
// the node's DATA/revoked_keys.krl, and in a cluster against the list the
// shared database holds as well, so that a `ca revoke` on any node refuses
// here at once.
func (n *Node) certChecker() *certauth.Checker {
	c := &certauth.Checker{Dir: n.Store, KRL: n.Dir.RevokedKeys()}
	if n.Self.ID != 0 {
		c.Shared = n.Store
	}
	return c
}

// refreshRevocations is part of a cluster node's heartbeat: it rewrites
// DATA/revoked_keys.krl when the cluster's list differs, for sshd's
// RevokedKeys (OpenSSH mode), which reads that file only. Without a list
// in the database the file is left alone.
func (n *Node) refreshRevocations(ctx context.Context) {
	shared, err := n.Store.RevokedKeys(ctx)
	if err != nil || shared == nil {
		return // the heartbeat logs a database that is away
	}
	path := n.Dir.RevokedKeys()
	local, err := os.ReadFile(path)
	if err == nil && bytes.Equal(local, shared) {
		return
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.Log.Warn().Err(err).Msg("refresh the revocation list")
		return
	}
	if err := atomicfile.Write(path, shared, 0o644); err != nil {
		n.Log.Warn().Err(err).Msg("refresh the revocation list")
		return
	}
	n.Log.Info().Int("bytes", len(shared)).Msg("revocation list refreshed")
}
