// Package authkeys writes authorized_keys lines that send every
// registered key through cpm-shell's forced command under OpenSSH.
package authkeys

import (
	"fmt"
	"regexp"
	"strings"
)

// fingerprintRe is a SHA256 key fingerprint: nothing a shell would read.
var fingerprintRe = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

// Line is one authorized_keys line for key id with public key pub. The
// "restrict" option turns off forwarding, ptys and ~/.ssh/rc, so the only
// thing the key can do is run the forced command.
func Line(shellBin, dataDir string, id int64, pub string) (string, error) {
	return line(shellBin, dataDir, fmt.Sprintf("key-%d", id), pub)
}

// PeerLine is the authorized_keys line for another cluster node's
// replication key pub, whose fingerprint is fp (SHA256:…): cpm-shell
// identifies the node by it again, so a line left behind after the
// node changed its key lets nobody in.
func PeerLine(shellBin, dataDir, fp, pub string) (string, error) {
	if !fingerprintRe.MatchString(fp) {
		return "", fmt.Errorf("fingerprint %q cannot be used in authorized_keys", fp)
	}
	return line(shellBin, dataDir, "peer-"+fp, pub)
}

func line(shellBin, dataDir, arg, pub string) (string, error) {
	for _, p := range []string{shellBin, dataDir} {
		if strings.ContainsAny(p, "'\"\\\n\r") {
			return "", fmt.Errorf("path %q cannot be used in authorized_keys", p)
		}
	}
	if strings.ContainsAny(pub, "\n\r\"") {
		return "", fmt.Errorf("key %s is not a single key line", arg)
	}
	// sshd runs the command through the user's shell: quote the paths.
	return fmt.Sprintf(`command="'%s' %s --data-dir '%s'",restrict %s`, shellBin, arg, dataDir, pub), nil
}

// PrincipalLine is the authorized principals line that sends a user
// certificate with principal to cpm-shell's certificate mode, which reads
// the certificate from sshd (ExposeAuthInfo).
func PrincipalLine(shellBin, dataDir, principal string) (string, error) {
	for _, p := range []string{shellBin, dataDir} {
		if strings.ContainsAny(p, "'\"\\\n\r") {
			return "", fmt.Errorf("path %q cannot be used in authorized principals", p)
		}
	}
	if strings.ContainsAny(principal, " \t\n\r\",'\\") {
		return "", fmt.Errorf("principal %q cannot be used in authorized principals", principal)
	}
	return fmt.Sprintf(`command="'%s' cert --data-dir '%s'",restrict %s`, shellBin, dataDir, principal), nil
}
