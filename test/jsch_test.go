package test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// jschJar is Debian's libjsch-java, which Debian's JGit speaks SSH with.
const jschJar = "/usr/share/java/jsch.jar"

// TestJSchRefused pins what the README says of JSch 0.1.5x: it knows no
// key exchange, host key or cipher the server offers (NIST ECDH and
// SHA-1 groups, RSA/DSA/ECDSA host keys, no AES-GCM), and fails with
// "Algorithm negotiation fail" before authentication, however the server
// waits for its hello.
func TestJSchRefused(t *testing.T) {
	java := needCommand(t, "java")
	if _, err := os.Stat(jschJar); err != nil {
		t.Fatalf("libjsch-java is not installed (make deps installs it): %v", err)
	}
	w := testworld.New(t, bin)
	srv := w.StartServer()
	host, port := "127.0.0.1", srv.Port()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", jschJar, "testdata/jsch_client.java", host, port)
	cmd.Env = testworld.Env()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Algorithm negotiation fail") {
		t.Fatalf("JSch: %v\n%s", err, out)
	}
	t.Logf("JSch: %s", strings.TrimSpace(string(out)))
}
