package sshkey

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	k, err := Generate(path, "deploy@ci")
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o644} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, mode)
		}
	}
	if k.Type != "ssh-ed25519" || k.Comment != "deploy@ci" {
		t.Errorf("key %+v", k)
	}
	if _, err := Generate(path, ""); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrote an existing key: %v", err)
	}
	// OpenSSH must accept the private key and derive the same public key.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command(keygen, "-y", "-f", path).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -y: %v", err)
		}
		if got, _ := Parse(out); got.Fingerprint != k.Fingerprint {
			t.Errorf("ssh-keygen derives %s, want %s", got.Fingerprint, k.Fingerprint)
		}
	}
}
