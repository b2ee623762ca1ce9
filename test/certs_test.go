package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// certKey makes a key pair and a user certificate for it, signed by the
// CA key at ca with ssh-keygen's own options (-n principals, -V, -O, -h).
func certKey(t *testing.T, dir, name, ca, keyID, serial string, opts ...string) testworld.Key {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	args := append([]string{"-q", "-s", ca, "-I", keyID, "-z", serial}, opts...)
	if out, err := exec.Command("ssh-keygen", append(args, path+".pub")...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v %s", err, out)
	}
	return testworld.Key{Path: path, PubPath: path + ".pub"}
}

func newCA(t *testing.T, dir, name string) string {
	t.Helper()
	ca := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", ca).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	return ca
}

// TestCertificates: user certificates of a trusted CA through the
// embedded server and OpenSSH's forced command: principal mapping,
// validity, critical options, revocation, and refusals.
func TestCertificates(t *testing.T) {
	c := newCompany(t)
	dir := t.TempDir()
	ca, rogue := newCA(t, dir, "corp-ca"), newCA(t, dir, "rogue-ca")
	if out := c.w.MustAdmin("ca", "add", "corp", ca+".pub"); !strings.Contains(out, "trusting certificate authority corp") {
		t.Fatalf("ca add: %s", out)
	}
	wantError(t, c.w.Admin("", "ca", "add", "again", ca+".pub"), "exists")
	c.w.MustAdmin("user", "set", "reader", "--principal", "rdr@corp")
	// sshd runs the principals command only from a path that no one but
	// root may change: not under /tmp.
	safe := safeBinDir(t)
	d := c.w.StartSSHDWith(
		"TrustedUserCAKeys "+filepath.Join(c.w.DataDir, "trusted_user_ca_keys"),
		"RevokedKeys "+filepath.Join(c.w.DataDir, "revoked_keys.krl"),
		"AuthorizedPrincipalsCommand "+filepath.Join(safe, "cpm-admin")+" --data-dir "+c.w.DataDir+" authorized-principals %t %k",
		"AuthorizedPrincipalsCommandUser root",
		"ExposeAuthInfo yes",
	)
	modes := map[string]func(testworld.Key) *testworld.Client{"embedded": c.srv.Client, "openssh": d.Client}

	valid := certKey(t, dir, "writer-cert", ca, "writer-laptop", "42", "-n", "writer", "-V", "-5m:+1h")
	mapped := certKey(t, dir, "reader-cert", ca, "reader-laptop", "43", "-n", "nobody,rdr@corp")
	refused := map[string]testworld.Key{
		"unknown CA":       certKey(t, dir, "rogue", rogue, "rogue", "1", "-n", "writer"),
		"expired":          certKey(t, dir, "expired", ca, "old", "2", "-n", "writer", "-V", "20200101:20200102"),
		"not yet valid":    certKey(t, dir, "future", ca, "future", "3", "-n", "writer", "-V", "+1d:+2d"),
		"host certificate": certKey(t, dir, "host", ca, "host", "4", "-h", "-n", "writer"),
		"nobody":           certKey(t, dir, "nobody", ca, "nobody", "5", "-n", "nobody"),
		"no principals":    certKey(t, dir, "anyone", ca, "anyone", "6"),
		"wrong address":    certKey(t, dir, "elsewhere", ca, "elsewhere", "7", "-n", "writer", "-O", "source-address=10.0.0.0/8"),
	}
	forced := certKey(t, dir, "forced", ca, "ci-bot", "8", "-n", "writer", "-O", "force-command=whoami")
	revoked := certKey(t, dir, "revoked", ca, "stolen-laptop", "9", "-n", "writer")

	for mode, client := range modes {
		t.Run(mode, func(t *testing.T) {
			if r := client(valid).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
				t.Fatalf("whoami with a valid certificate: %q %s", r.Stdout, r.Stderr)
			}
			if r := client(mapped).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "reader" {
				t.Errorf("principal rdr@corp: %q %s", r.Stdout, r.Stderr)
			}
			for name, k := range refused {
				if r := client(k).SSH(nil, "whoami"); r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied") {
					t.Errorf("%s: exit %d, %q %s", name, r.Code, r.Stdout, r.Stderr)
				}
			}
			// A push with a certificate is checked and audited like one
			// with a key, naming the certificate.
			cl := client(valid)
			work, r := cl.Clone("acme/web")
			if r.Code != 0 {
				t.Fatalf("clone: %s", r.Stderr)
			}
			cl.Commit(work, "by certificate "+mode)
			cl.MustGit(work, "push", "-q", "origin", "HEAD:cert-"+mode)
			cl.MustGit(work, "checkout", "-q", "origin/main")
			cl.MustGit(work, "commit", "-q", "--amend", "-m", "rewritten")
			if r := cl.Git(work, "push", "-q", "-f", "origin", "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, "needs admin") {
				t.Errorf("a forced push to main (protected) with a writer's certificate: %s", r.Stderr)
			}
			audit := c.w.MustAdmin("audit", "--json", "--limit", "5")
			if !strings.Contains(audit, `"cert_key_id": "writer-laptop"`) || !strings.Contains(audit, `"cert_serial": 42`) {
				t.Errorf("audit of the push names no certificate:\n%s", audit)
			}
		})
	}
	// The certificate's force-command runs whatever the client asks
	// (embedded server; OpenSSH mode refuses such certificates, since sshd
	// would run the command itself).
	if r := c.srv.Client(forced).SSH(nil, "info"); strings.TrimSpace(r.Stdout) != "writer" {
		t.Errorf("force-command=whoami: %q %s", r.Stdout, r.Stderr)
	}
	if r := d.Client(forced).SSH(nil, "info"); r.Code == 0 {
		t.Errorf("a force-command certificate through OpenSSH: %q", r.Stdout)
	}
	if !strings.Contains(c.srv.Log(), `"cert_key_id":"ci-bot"`) {
		t.Error("the session log names no certificate")
	}

	// Revocation: ssh-keygen -k, installed with ca revoke.
	for mode, client := range modes {
		if r := client(revoked).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
			t.Fatalf("%s: before revocation: %q %s", mode, r.Stdout, r.Stderr)
		}
	}
	spec := filepath.Join(dir, "krl.spec")
	os.WriteFile(spec, []byte("serial: 9\n"), 0o644)
	krl := filepath.Join(dir, "revoked.krl")
	if out, err := exec.Command("ssh-keygen", "-q", "-k", "-f", krl, "-s", ca+".pub", spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v %s", err, out)
	}
	c.w.MustAdmin("ca", "revoke", krl)
	wantError(t, c.w.Admin("", "ca", "revoke", spec), "not a key revocation list")
	for mode, client := range modes {
		if r := client(revoked).SSH(nil, "whoami"); r.Code == 0 {
			t.Errorf("%s: a revoked certificate: %q", mode, r.Stdout)
		}
		if r := client(valid).SSH(nil, "whoami"); strings.TrimSpace(r.Stdout) != "writer" {
			t.Errorf("%s: revocation of serial 9 refused serial 42: %s", mode, r.Stderr)
		}
	}
	// An authority removed: its certificates stop at once.
	c.w.MustAdmin("ca", "remove", "corp")
	for mode, client := range modes {
		if r := client(valid).SSH(nil, "whoami"); r.Code == 0 {
			t.Errorf("%s: a certificate of a removed authority: %q", mode, r.Stdout)
		}
	}
}

// TestCertificateIdentityIsTheSigner: a certificate and a plain key
// offered in either order; the identity is whichever signed.
func TestCertificateIdentityIsTheSigner(t *testing.T) {
	c := newCompany(t)
	dir := t.TempDir()
	ca := newCA(t, dir, "corp-ca")
	c.w.MustAdmin("ca", "add", "corp", ca+".pub")
	cert := certKey(t, dir, "writer-cert", ca, "writer-laptop", "1", "-n", "writer")
	plain := c.keys["reader"]
	for _, tt := range []struct {
		first, then testworld.Key
		want        string
	}{
		{cert, plain, "writer"},
		{plain, cert, "reader"},
	} {
		// The client's own key goes first, then the other.
		if r := c.srv.Client(tt.first).SSH([]string{"-i", tt.then.Path}, "whoami"); strings.TrimSpace(r.Stdout) != tt.want {
			t.Errorf("offered %s, then %s: %q %s, want %s", tt.first.Path, tt.then.Path, r.Stdout, r.Stderr, tt.want)
		}
	}
}

// safeBinDir copies cpm's binaries into a directory under /run that only
// root may write, with every parent likewise, as sshd wants for the
// commands it runs; it is removed after the test.
func safeBinDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/run", "cpm-bin-")
	if err != nil {
		t.Skipf("no safe directory for sshd's commands: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	for _, b := range []string{bin.Admin, bin.Shell, bin.Hook} {
		if out, err := exec.Command("cp", b, d).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	return d
}
