package sshserver

import (
	"slices"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

func TestStrongAlgorithms(t *testing.T) {
	insecure := gossh.InsecureAlgorithms()
	banned := slices.Concat(insecure.KeyExchanges, insecure.Ciphers, insecure.MACs, insecure.PublicKeyAuths,
		[]string{gossh.KeyExchangeECDHP256, gossh.KeyExchangeECDHP384, gossh.KeyExchangeECDHP521,
			gossh.HMACSHA1, gossh.KeyAlgoRSA})
	for _, tc := range []struct {
		name      string
		aes       bool
		firstCiph string
	}{
		{"with AES instructions", true, gossh.CipherAES128GCM},
		{"without AES instructions", false, gossh.CipherChaCha20Poly1305},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := StrongAlgorithms(tc.aes)
			for _, list := range [][]string{a.KeyExchanges, a.Ciphers, a.MACs, a.PublicKeyAuths} {
				for _, alg := range list {
					if slices.Contains(banned, alg) {
						t.Errorf("offers %s", alg)
					}
				}
			}
			if a.Ciphers[0] != tc.firstCiph {
				t.Errorf("first cipher %s, want %s", a.Ciphers[0], tc.firstCiph)
			}
			// Clients prefer ChaCha20; with AES instructions it is the
			// most expensive cipher for the server, so it is not offered.
			if chacha := slices.Contains(a.Ciphers, gossh.CipherChaCha20Poly1305); chacha == tc.aes {
				t.Errorf("ChaCha20-Poly1305 offered: %v", chacha)
			}
			if a.KeyExchanges[0] != gossh.KeyExchangeMLKEM768X25519 {
				t.Errorf("first key exchange %s", a.KeyExchanges[0])
			}
			// x/crypto drops what it does not implement; all of ours must survive.
			var c gossh.Config
			a.apply(&c)
			c.SetDefaults()
			if len(c.Ciphers) != len(a.Ciphers) || len(c.MACs) != len(a.MACs) {
				t.Errorf("x/crypto dropped some: %v %v", c.Ciphers, c.MACs)
			}
		})
	}
}
