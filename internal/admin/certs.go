package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/atomicfile"
	"cpm/internal/authkeys"
	"cpm/internal/certauth"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
)

// principalRe is what cpm accepts as a certificate principal: it goes
// into an authorized principals line, so no spaces, quotes or commas.
var principalRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// AddCA trusts the certificate authority whose public key is in r, and
// rewrites the authorities file OpenSSH mode reads.
func (s *Service) AddCA(ctx context.Context, dir datadir.Dir, name string, r io.Reader) (store.CA, error) {
	if err := names.Check(names.User, name); err != nil {
		return store.CA{}, fmt.Errorf("authority name: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(r, 16<<10))
	if err != nil {
		return store.CA{}, fmt.Errorf("read the authority's key: %w", err)
	}
	key, _, _, rest, err := gossh.ParseAuthorizedKey(body)
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return store.CA{}, errors.New("the authority's key: want one public key line (the CA's .pub file)")
	}
	if _, ok := key.(*gossh.Certificate); ok {
		return store.CA{}, errors.New("the authority's key: a certificate is not an authority's key")
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	ca, err := s.Store.AddCA(ctx, s.Actor, store.CA{Name: name, Type: key.Type(), PublicKey: line, Fingerprint: gossh.FingerprintSHA256(key)})
	if err != nil {
		return ca, err
	}
	return ca, s.WriteTrustedCAs(ctx, dir)
}

// RemoveCA stops trusting an authority.
func (s *Service) RemoveCA(ctx context.Context, dir datadir.Dir, name string) error {
	if err := s.Store.RemoveCA(ctx, s.Actor, name); err != nil {
		return err
	}
	return s.WriteTrustedCAs(ctx, dir)
}

// CAs lists the trusted authorities.
func (s *Service) CAs(ctx context.Context) ([]store.CA, error) { return s.Store.CAs(ctx) }

// WriteTrustedCAs writes the trusted authorities' keys, one per line, for
// sshd's TrustedUserCAKeys.
func (s *Service) WriteTrustedCAs(ctx context.Context, dir datadir.Dir) error {
	cas, err := s.Store.CAs(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, c := range cas {
		b.WriteString(c.PublicKey + " " + c.Name + "\n")
	}
	if err := atomicfile.Write(dir.TrustedCAKeys(), []byte(b.String()), 0o644); err != nil {
		return err
	}
	// sshd refuses every key when its RevokedKeys file is missing: an
	// empty list until cpm-admin ca revoke installs one.
	if _, err := os.Stat(dir.RevokedKeys()); errors.Is(err, os.ErrNotExist) {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-k", "-f", dir.RevokedKeys()).CombinedOutput(); err != nil {
			return fmt.Errorf("empty revocation list: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// RevokeCerts installs the key revocation list at path (made with ssh-keygen
// -k): certificates and keys it lists no longer authenticate. The list
// goes into the database first: in a cluster that is where every node
// checks it, from the next connection on (their workers copy it into
// their own DATA/revoked_keys.krl for sshd); then into this node's file.
func (s *Service) RevokeCerts(ctx context.Context, dir datadir.Dir, path string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	// ssh-keygen reads it back, or it is not a KRL.
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-Q", "-l", "-f", path).CombinedOutput(); err != nil {
		return fmt.Errorf("%s is not a key revocation list (ssh-keygen -k makes one): %s", path, strings.TrimSpace(string(out)))
	}
	if err := s.Store.SetRevokedKeys(ctx, s.Actor, body); err != nil {
		return err
	}
	return atomicfile.Write(dir.RevokedKeys(), body, 0o644)
}

// SetPrincipal names user in certificates by principal ("" for the user
// name).
func (s *Service) SetPrincipal(ctx context.Context, user, principal string) error {
	if err := names.Check(names.User, user); err != nil {
		return err
	}
	if principal != "" && !principalRe.MatchString(principal) {
		return fmt.Errorf("principal %q: want letters, digits and . _ @ + - (at most 128)", principal)
	}
	return s.Store.SetPrincipal(ctx, s.Actor, user, principal)
}

// AuthorizedPrincipals is what sshd's AuthorizedPrincipalsCommand prints
// for a certificate (TYPE BASE64, as %t %k give it): the one principal
// line that sends it to cpm-shell, or nothing when it does not
// authenticate. A certificate with force-command gets nothing: sshd
// would run that command itself, outside cpm.
func (s *Service) AuthorizedPrincipals(ctx context.Context, dir datadir.Dir, shellBin, certType, certB64 string) (string, error) {
	key, _, _, _, err := gossh.ParseAuthorizedKey([]byte(certType + " " + certB64))
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	cert, ok := key.(*gossh.Certificate)
	if !ok {
		return "", errors.New("not a certificate")
	}
	checker := certauth.Checker{Dir: s.Store, KRL: dir.RevokedKeys()}
	node, err := dir.NodeName()
	if err != nil {
		return "", err
	}
	if node != "" {
		checker.Shared = s.Store // a cluster's list holds before the workers copy it here
	}
	r, err := checker.Check(ctx, cert)
	if err != nil {
		return "", err
	}
	if _, forced := cert.CriticalOptions["force-command"]; forced {
		return "", fmt.Errorf("%w: a force-command certificate is for the embedded server only", certauth.ErrRefused)
	}
	if !principalRe.MatchString(r.Principal) {
		return "", fmt.Errorf("%w: principal %q cannot go into a principals line", certauth.ErrRefused, r.Principal)
	}
	return authkeys.PrincipalLine(shellBin, dir.String(), r.Principal)
}
