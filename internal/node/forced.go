package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/access"
)

// CertIdentity is who the certificate sshd authenticated speaks for: sshd
// names it in the file SSH_USER_AUTH points to (ExposeAuthInfo yes), and
// cpm checks it again, as the embedded server would.
func (n *Node) CertIdentity(ctx context.Context, authInfo string) (access.Identity, error) {
	if authInfo == "" {
		return access.Identity{}, errors.New("no SSH_USER_AUTH: sshd needs ExposeAuthInfo yes for certificates")
	}
	body, err := os.ReadFile(authInfo)
	if err != nil {
		return access.Identity{}, err
	}
	var cert *gossh.Certificate
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, "publickey "); ok {
			if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(rest)); err == nil {
				if c, ok := k.(*gossh.Certificate); ok {
					cert = c
				}
			}
		}
	}
	if cert == nil {
		return access.Identity{}, errors.New("sshd authenticated no certificate")
	}
	r, err := n.certChecker().Check(ctx, cert)
	if err != nil {
		return access.Identity{}, err
	}
	id, err := n.Gateway.Access.IdentifyUser(ctx, r.Owner.User)
	if err != nil {
		return access.Identity{}, err
	}
	id.Fingerprint = r.Owner.Fingerprint
	id.Cert = &access.CertInfo{KeyID: r.KeyID, Serial: r.Serial, CA: r.CA}
	return id, nil
}

// PeerIdentity is the cluster node whose replication key, with
// fingerprint fp, sshd authenticated (cpm-admin authorized-keys' line
// for it): only a node's key, and only while it is that node's.
func (n *Node) PeerIdentity(ctx context.Context, fp string) (access.Identity, error) {
	id, err := n.Gateway.Access.Identify(ctx, fp)
	if err != nil {
		return access.Identity{}, err
	}
	if !id.Node {
		return access.Identity{}, fmt.Errorf("%s: %w", fp, access.ErrUnknownKey)
	}
	return id, nil
}
