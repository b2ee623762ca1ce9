package sshkey

import (
	"crypto/dsa"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func line(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	l := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		l += " " + comment
	}
	return l
}

func TestParse(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	var dsaKey dsa.PrivateKey
	if err := dsa.GenerateParameters(&dsaKey.Parameters, rand.Reader, dsa.L1024N160); err != nil {
		t.Fatal(err)
	}
	if err := dsa.GenerateKey(&dsaKey, rand.Reader); err != nil {
		t.Fatal(err)
	}
	ed := line(t, edPub, "alice@laptop")

	signer, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
	cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"alice"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	certLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))

	tests := []struct {
		name    string
		text    string
		ok      bool
		comment string
	}{
		{"ed25519", ed, true, "alice@laptop"},
		{"ed25519 trailing newline", ed + "\n", true, "alice@laptop"},
		{"ed25519 CRLF", ed + "\r\n", true, "alice@laptop"},
		{"no comment", line(t, edPub, ""), true, ""},
		{"ecdsa", line(t, &ecKey.PublicKey, ""), true, ""},
		{"rsa 2048", line(t, &rsa2048.PublicKey, ""), true, ""},
		{"rsa 1024", line(t, &rsa1024.PublicKey, ""), false, ""},
		{"dsa", line(t, &dsaKey.PublicKey, ""), false, ""},
		{"certificate", certLine, false, ""},
		{"empty", "", false, ""},
		{"blank", " \n\n", false, ""},
		{"junk", "hello world", false, ""},
		{"base64 junk", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJunk", false, ""},
		{"two keys", ed + "\n" + ed, false, ""},
		{"embedded CR", strings.Replace(ed, " alice", "\r alice", 1), false, ""},
		{"NUL", ed + "\x00", false, ""},
		{"command option", `command="/bin/sh" ` + ed, false, ""},
		{"restrict option", "restrict " + ed, false, ""},
		{"private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n", false, ""},
		{"huge", ed + " " + strings.Repeat("x", MaxSize), false, ""},
		{"escape in comment", line(t, edPub, "evil\x1b[2Jclear"), true, "evil[2Jclear"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse([]byte(tt.text))
			if (err == nil) != tt.ok {
				t.Fatalf("Parse = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrRejected) {
					t.Errorf("error %v does not wrap ErrRejected", err)
				}
				if strings.ContainsAny(err.Error(), "\n\r") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if k.Comment != tt.comment {
				t.Errorf("comment = %q, want %q", k.Comment, tt.comment)
			}
			if !strings.HasPrefix(k.Fingerprint, "SHA256:") {
				t.Errorf("fingerprint %q", k.Fingerprint)
			}
			if strings.Contains(k.Line(), "alice") {
				t.Errorf("Line() carries the comment: %q", k.Line())
			}
		})
	}
}

// The fingerprint must be exactly what ssh-keygen -lf prints, since admins
// copy it from there into `key remove`.
func TestFingerprintMatchesSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	path := filepath.Join(t.TempDir(), "id")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "t@x", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	out, err := exec.Command(keygen, "-lf", path+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[1]
	text, _ := os.ReadFile(path + ".pub")
	k, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint != want {
		t.Errorf("fingerprint %q, ssh-keygen says %q", k.Fingerprint, want)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	good := "SHA256:" + strings.Repeat("A", 43)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{good, good, true},
		{strings.Repeat("A", 43), good, true},
		{"SHA256:short", "", false},
		{"MD5:aa:bb", "", false},
		{"SHA256:" + strings.Repeat("A", 42) + "'", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeFingerprint(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", tt.in, got, err)
		}
	}
}
