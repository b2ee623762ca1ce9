// Package certauth decides whether an SSH user certificate authenticates,
// and as whom: a trusted authority signed it, it is a user certificate
// inside its validity window, not revoked by the revocation list, with
// no critical option cpm does not honour, and one of its principals names
// a cpm user. The embedded SSH server and `cpm-admin
// authorized-principals` (OpenSSH mode) both ask it. On a node of a
// cluster the revocation list the shared database holds counts besides
// the node's own file, which the workers refresh from it for sshd.
package certauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/store"
)

// Directory is where the trusted authorities and the users live.
type Directory interface {
	CAByFingerprint(ctx context.Context, fp string) (store.CA, error)
	UserByPrincipal(ctx context.Context, principal string) (store.KeyOwner, error)
}

// Checker checks certificates against a Directory and a revocation list.
type Checker struct {
	Dir Directory
	// KRL is the path of an OpenSSH key revocation list (ssh-keygen -k);
	// a missing file revokes nothing.
	KRL string
	// Shared is the revocation list every node of a cluster holds in
	// force (nil outside a cluster): a `ca revoke` on another node
	// refuses here from the next connection on, before the workers have
	// copied it into the KRL file. A certificate either list revokes is
	// revoked.
	Shared RevocationList
	Now    func() time.Time // nil: time.Now
}

// RevocationList is where a cluster keeps its revocation list
// (store.Store).
type RevocationList interface {
	// RevokedKeys is the list (nil: none).
	RevokedKeys(ctx context.Context) ([]byte, error)
}

// Result is who a certificate authenticates.
type Result struct {
	Owner     store.KeyOwner // the user; Fingerprint is the certificate's key
	Principal string
	KeyID     string
	Serial    uint64
	CA        string // the authority's name
	// ForceCommand and SourceAddress are the certificate's critical
	// options ("" when absent): the command that runs whatever the client
	// asks, and the client addresses it is valid from.
	ForceCommand, SourceAddress string
}

// Honoured are the critical options cpm enforces; a certificate with any
// other is refused, as OpenSSH refuses one.
var Honoured = []string{"force-command", "source-address"}

// ErrRefused wraps every reason a certificate does not authenticate.
var ErrRefused = errors.New("certificate refused")

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Check decides a certificate. The source address is the caller's to
// enforce (the SSH server does, from the returned options).
func (c Checker) Check(ctx context.Context, cert *gossh.Certificate) (Result, error) {
	if cert.CertType != gossh.UserCert {
		return Result{}, refused("a host certificate is not a user's")
	}
	ca, err := c.Dir.CAByFingerprint(ctx, gossh.FingerprintSHA256(cert.SignatureKey))
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, refused("signed by an unknown authority %s", gossh.FingerprintSHA256(cert.SignatureKey))
	}
	if err != nil {
		return Result{}, err
	}
	r := Result{KeyID: cert.KeyId, Serial: cert.Serial, CA: ca.Name,
		ForceCommand: cert.CriticalOptions["force-command"], SourceAddress: cert.CriticalOptions["source-address"]}
	for _, p := range cert.ValidPrincipals {
		o, err := c.Dir.UserByPrincipal(ctx, p)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		r.Owner, r.Principal = o, p
		break
	}
	if r.Principal == "" {
		// A certificate without principals is valid for anyone in OpenSSH;
		// here it names nobody.
		return Result{}, refused("no principal of %q names a cpm user", cert.ValidPrincipals)
	}
	checker := gossh.CertChecker{SupportedCriticalOptions: Honoured, Clock: c.Now}
	if err := checker.CheckCert(r.Principal, cert); err != nil {
		return Result{}, refused("%v", err)
	}
	revoked, err := c.revoked(ctx, cert)
	if err != nil {
		return Result{}, err
	}
	if revoked {
		return Result{}, refused("serial %d (key id %q) is revoked", cert.Serial, cert.KeyId)
	}
	r.Owner.Fingerprint = gossh.FingerprintSHA256(cert.Key)
	return r, nil
}

// revoked asks ssh-keygen whether a revocation list in force revokes
// cert: the list's format is OpenSSH's, and so is the authoritative
// reader of it. The shared list is checked only when it differs from the
// local file, as it does until the workers have refreshed the file.
func (c Checker) revoked(ctx context.Context, cert *gossh.Certificate) (bool, error) {
	var local []byte
	if c.KRL != "" {
		b, err := os.ReadFile(c.KRL)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("check revocation: %w", err)
		}
		local = b
	}
	var shared []byte
	if c.Shared != nil {
		b, err := c.Shared.RevokedKeys(ctx)
		if err != nil {
			return false, fmt.Errorf("check revocation: %w", err)
		}
		if !bytes.Equal(b, local) {
			shared = b
		}
	}
	if local == nil && shared == nil {
		return false, nil
	}
	dir, err := os.MkdirTemp("", "cpm-cert-")
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	defer os.RemoveAll(dir)
	certFile := filepath.Join(dir, "cert.pub")
	if err := os.WriteFile(certFile, gossh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	if local != nil {
		if revoked, err := revokedBy(c.KRL, certFile); err != nil || revoked {
			return revoked, err
		}
	}
	if shared == nil {
		return false, nil
	}
	sharedFile := filepath.Join(dir, "shared.krl")
	if err := os.WriteFile(sharedFile, shared, 0o600); err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	return revokedBy(sharedFile, certFile)
}

// revokedBy runs ssh-keygen -Q: whether the list at krl revokes the key
// in the file at key.
func revokedBy(krl, key string) (bool, error) {
	out, err := exec.Command("ssh-keygen", "-Q", "-f", krl, key).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1 && bytes.Contains(out, []byte("REVOKED")):
		return true, nil
	}
	return false, fmt.Errorf("check revocation with ssh-keygen -Q: %v: %s", err, out)
}
