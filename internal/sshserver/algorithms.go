package sshserver

import (
	"runtime"
	"slices"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// Algorithms is what the embedded server offers, strongest first. The
// client's order picks among them, so leaving a weak algorithm out is the
// only way to keep a client from choosing it.
type Algorithms struct {
	KeyExchanges []string
	Ciphers      []string
	MACs         []string
	// PublicKeyAuths are the signature algorithms a client may sign with.
	PublicKeyAuths []string
}

// StrongAlgorithms returns the set cpm offers. hasAESHardware decides
// between AES and ChaCha20-Poly1305. With AES instructions ChaCha20 is
// left out: clients (OpenSSH first of all) prefer it, and x/crypto's
// ChaCha20-Poly1305 costs the server about 3x the CPU of AES-CTR with
// HMAC-SHA256 and 8x that of AES-GCM (422, 1325 and 3697 MB/s on the CI
// machine); OpenSSH then takes AES-CTR. Without AES instructions
// ChaCha20 comes first.
//
// Key exchange: the post-quantum hybrid, then curve25519 (x/crypto adds
// its libssh.org alias itself). No NIST curves, no SHA-1 groups: every
// client cpm supports (OpenSSH, dropbear, PuTTY, libssh2) speaks
// curve25519.
//
// MACs only matter for AES-CTR (the AEAD ciphers carry their own). The
// non-ETM hmac-sha2 pair stays for libssh2 1.10 (libgit2, pygit2 on
// Debian 12), which knows no ETM MAC and no AEAD cipher.
func StrongAlgorithms(hasAESHardware bool) Algorithms {
	aead := []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES256GCM, gossh.CipherAES128GCM}
	if hasAESHardware {
		aead = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM}
	}
	return Algorithms{
		KeyExchanges: []string{gossh.KeyExchangeMLKEM768X25519, gossh.KeyExchangeCurve25519},
		Ciphers:      append(aead, gossh.CipherAES256CTR, gossh.CipherAES128CTR),
		MACs:         []string{gossh.HMACSHA256ETM, gossh.HMACSHA512ETM, gossh.HMACSHA256, gossh.HMACSHA512},
		// x/crypto's supported list, unlike its default, has no SHA-1 RSA
		// (ssh-rsa) and no DSA signatures.
		PublicKeyAuths: gossh.SupportedAlgorithms().PublicKeyAuths,
	}
}

// HasAESHardware reports whether this CPU has AES (and carry-less
// multiply, which GCM needs to be fast) instructions.
func HasAESHardware() bool {
	switch runtime.GOARCH {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESGCM
	}
	return false
}

// apply sets the transport algorithms; each connection gets copies,
// since x/crypto filters these slices in place.
func (a Algorithms) apply(c *gossh.Config) {
	c.KeyExchanges = slices.Clone(a.KeyExchanges)
	c.Ciphers = slices.Clone(a.Ciphers)
	c.MACs = slices.Clone(a.MACs)
}

// aeadCiphers are the ciphers that carry their own integrity.
var aeadCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM, gossh.CipherChaCha20Poly1305}

// forClient narrows the offer to the AEAD ciphers when the client's
// KEXINIT offers one of cpm's in each direction. The client's order picks
// the cipher, and OpenSSH's puts AES-CTR before AES-GCM (ChaCha20, which
// it lists first, is not offered on AES CPUs): a 300 MB clone costs the
// server about a fifth more CPU with AES-CTR and HMAC-SHA256 than with
// AES-GCM (2.95 s vs 2.50 s, git's own work included). Clients without AEAD ciphers (libssh2 1.10, paramiko 2) still
// get AES-CTR, and a client that insists on CTR only offers CTR.
func (a Algorithms) forClient(h clientHello) Algorithms {
	var ours []string
	for _, c := range a.Ciphers {
		if slices.Contains(aeadCiphers, c) {
			ours = append(ours, c)
		}
	}
	speaks := func(offered []string) bool {
		return slices.ContainsFunc(offered, func(c string) bool { return slices.Contains(ours, c) })
	}
	if speaks(h.CiphersClientServer) && speaks(h.CiphersServerClient) {
		a.Ciphers = ours
	}
	return a
}
