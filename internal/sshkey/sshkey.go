// Package sshkey parses the public keys that users and deploy keys are
// registered with, and applies cpm's key policy.
//
// A key reaches cpm as the text of a .pub file. Only a bare key line is
// accepted: no authorized_keys options (they would smuggle "command=" or
// "permitopen=" into the forced-command file), no second line, no
// certificate, no DSA and no RSA key under 2048 bits.
package sshkey

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// MaxSize bounds the key text read from a file or stdin. An RSA-16384 key
// line is about 2.8 KiB; anything much larger is not a public key.
const MaxSize = 16 << 10

// MinRSABits is the smallest RSA modulus accepted.
const MinRSABits = 2048

// maxComment bounds the comment kept from the key line.
const maxComment = 200

// ErrRejected is wrapped by every policy or parse error.
var ErrRejected = errors.New("invalid key")

// Key is a parsed, accepted public key.
type Key struct {
	Public      ssh.PublicKey
	Type        string // e.g. "ssh-ed25519"
	Fingerprint string // "SHA256:…", as ssh-keygen -lf prints it
	Comment     string // printable ASCII only, possibly empty
}

// Line returns the key in authorized_keys form without options or comment.
func (k Key) Line() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Public)))
}

// allowedTypes lists the key algorithms cpm accepts. Certificates are left
// out: their principals and options would be a second, unaudited policy.
var allowedTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKECDSA256: true,
	ssh.KeyAlgoRSA:        true,
}

// Parse accepts exactly one public key line, as found in a .pub file.
func Parse(text []byte) (Key, error) {
	if len(text) > MaxSize {
		return Key{}, reject("larger than %d bytes; not a public key", MaxSize)
	}
	text = bytes.TrimRight(text, " \t\r\n")
	text = bytes.TrimLeft(text, " \t")
	switch {
	case len(text) == 0:
		return Key{}, reject("empty")
	case bytes.HasPrefix(text, []byte("-----BEGIN")):
		return Key{}, reject("this is a private key; give the .pub file instead")
	case bytes.ContainsAny(text, "\r\n"):
		return Key{}, reject("more than one line; give one key")
	case bytes.IndexByte(text, 0) >= 0:
		return Key{}, reject("contains a NUL byte")
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey(text)
	if err != nil {
		return Key{}, reject("not an OpenSSH public key line")
	}
	if len(options) > 0 {
		return Key{}, reject("key options (%s) are not allowed", options[0])
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return Key{}, reject("trailing data after the key")
	}
	if err := checkPolicy(pub); err != nil {
		return Key{}, err
	}
	return Key{
		Public:      pub,
		Type:        pub.Type(),
		Fingerprint: ssh.FingerprintSHA256(pub),
		Comment:     cleanComment(comment),
	}, nil
}

func checkPolicy(pub ssh.PublicKey) error {
	t := pub.Type()
	if t == ssh.KeyAlgoDSA {
		return reject("DSA keys are not accepted; use ed25519")
	}
	if strings.Contains(t, "-cert-") {
		return reject("certificates are not accepted; give the plain public key")
	}
	if !allowedTypes[t] {
		return reject("key type %q is not accepted", t)
	}
	if t == ssh.KeyAlgoRSA {
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return reject("unreadable RSA key")
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return reject("unreadable RSA key")
		}
		if bits := rk.N.BitLen(); bits < MinRSABits {
			return reject("RSA key of %d bits is too short; need at least %d (or use ed25519)", bits, MinRSABits)
		}
	}
	return nil
}

// NormalizeFingerprint accepts "SHA256:…" or the bare base64 part and
// returns the "SHA256:…" form, or an error for anything else.
func NormalizeFingerprint(fp string) (string, error) {
	body := strings.TrimPrefix(fp, "SHA256:")
	// Unpadded base64 of a 32-byte digest is 43 characters.
	if len(body) != 43 {
		return "", fmt.Errorf("invalid fingerprint %q: want SHA256:… as ssh-keygen -lf prints it", clip(fp))
	}
	for _, c := range body {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return "", fmt.Errorf("invalid fingerprint %q: want SHA256:… as ssh-keygen -lf prints it", clip(fp))
		}
	}
	return "SHA256:" + body, nil
}

// cleanComment keeps printable ASCII so a comment cannot carry terminal
// escapes into listings.
func cleanComment(c string) string {
	c = strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, c)
	c = strings.TrimSpace(c)
	if len(c) > maxComment {
		c = c[:maxComment]
	}
	return c
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, args...))
}
