package sshserver

import (
	"fmt"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/store"
)

// fencedExt marks a connection let in only to be told that this node has
// lost its lease.
const fencedExt = "cpm-fenced"

// fencedVersion is the identification line of a cluster node whose lease
// does not hold. A load balancer's health check tells it from
// serverVersion (deploy/haproxy/haproxy.cfg expects "SSH-2.0-cpm" and a
// line end), so it stops sending clients to a node that can only refuse
// them: under leastconn a fenced node, whose sessions end at once, would
// otherwise draw most new connections. A client that connects anyway
// still reads the fencing words.
const fencedVersion = serverVersion + "-fenced"

// versionLine is the identification line for a new connection.
func (s *Server) versionLine() string {
	if s.gw.Fence != nil && !s.gw.Fence.Held() {
		return fencedVersion
	}
	return serverVersion
}

// fencedPermissions is the answer to a key that could not be looked up
// because the database is out of reach, on a cluster node whose lease
// does not hold: such a node has lost its lease, most often for that very
// reason. The connection is let in to a session that only says so (the
// fencing words, as for a key the node could identify), rather than
// "Permission denied", which would send the user after their key, or a
// banner that git's ssh does not show at LogLevel ERROR. It grants
// nothing. nil when the node is no fenced cluster node.
func (s *Server) fencedPermissions(fp string) *gossh.Permissions {
	if s.gw.Fence == nil || s.gw.Fence.Held() {
		return nil
	}
	return &gossh.Permissions{Extensions: map[string]string{fingerprintExt: fp, fencedExt: "1"}}
}

// refuseFenced ends a session let in by fencedPermissions, and its
// connection soon after: a connection that stayed open (another node's
// multiplexed ssh) would otherwise answer every later session alike, long
// after the lease holds again. It reports whether it did.
func (s *Server) refuseFenced(sess ssh.Session, conn *gossh.ServerConn, ext map[string]string) bool {
	if ext[fencedExt] == "" {
		return false
	}
	s.log.Info().Str("key", ext[fingerprintExt]).Str("remote", sess.RemoteAddr().String()).
		Str("decision", "fenced").Msg("session")
	fmt.Fprintf(sess.Stderr(), "cpm: %v\n", store.ErrFenced)
	sess.Exit(1)
	time.AfterFunc(200*time.Millisecond, func() { conn.Close() })
	return true
}
