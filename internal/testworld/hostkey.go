package testworld

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// PublicHostKey is the "TYPE BASE64" public half of the host key in the
// data directory dataDir, read from the private key (a node of a cluster
// may be given its key without the .pub beside it).
func PublicHostKey(dataDir string) (string, error) {
	return publicKeyFile(filepath.Join(dataDir, "ssh_host_ed25519_key"))
}

// publicKeyFile is the public key line of the private key at path.
func publicKeyFile(path string) (string, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return "", fmt.Errorf("host key %s: %w", path, err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}

// FreePort is a TCP port free on the loopback address host right now.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
