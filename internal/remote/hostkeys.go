package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"cpm/internal/atomicfile"
	"cpm/internal/printable"
)

// ParseHostKey accepts a public key line ("ssh-ed25519 AAAA… comment", the
// content of a .pub host key) or a known_hosts line, and returns it as
// "TYPE BASE64".
func ParseHostKey(line string) (string, error) {
	line = strings.TrimSpace(line)
	if strings.ContainsAny(line, "\n\r") {
		return "", errors.New("host key: give one line")
	}
	if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), nil
	}
	if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), nil
	}
	return "", errors.New("host key: not a public key line")
}

// Fingerprint of a "TYPE BASE64" host key, as ssh-keygen -lf prints it.
func Fingerprint(hostKey string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return "?"
	}
	return ssh.FingerprintSHA256(k)
}

// ScanHostKey asks the target for its host key (ssh-keyscan), preferring
// ed25519. The result is only a proposal: the operator confirms it.
func ScanHostKey(ctx context.Context, host string, port int) (string, error) {
	// ssh-keyscan says only "exit status 1" when it cannot connect: ask
	// the network first, for an error that names the cause.
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("cannot reach %s: %w", addr, dialCause(err))
	}
	c.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ssh-keyscan", "-T", "5", "-p", strconv.Itoa(port), "-t", "ed25519,ecdsa,rsa", host)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return "", fmt.Errorf("ssh-keyscan %s: no host key: %s", addr, printable.Line(stderr.String()))
	}
	var keys []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		if k, err := ParseHostKey(l); err == nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("ssh-keyscan %s:%d: no host key", host, port)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		return strings.HasPrefix(keys[i], "ssh-ed25519 ") && !strings.HasPrefix(keys[j], "ssh-ed25519 ")
	})
	return keys[0], nil
}

// dialCause is the part of a dial error a person needs: "connection
// refused", "i/o timeout", "no such host".
func dialCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// Pinned is one target's host key for known_hosts.
type Pinned struct {
	Name    string // the server's name: its HostKeyAlias
	HostKey string
}

// WriteKnownHosts replaces the known_hosts file with exactly the pinned
// keys, atomically.
func WriteKnownHosts(path string, pins []Pinned) error {
	var b strings.Builder
	for _, p := range pins {
		if p.HostKey == "" {
			continue
		}
		fmt.Fprintf(&b, "%s %s\n", HostKeyAlias(p.Name), p.HostKey)
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}
