package sshserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// packet frames payload as an unencrypted SSH binary packet.
func packet(payload []byte, padding int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(1+len(payload)+padding))
	b.WriteByte(byte(padding))
	b.Write(payload)
	b.Write(make([]byte, padding))
	return b.Bytes()
}

func kexInit(ciphers ...string) []byte {
	return gossh.Marshal(&kexInitMsg{
		KexAlgos: []string{gossh.KeyExchangeCurve25519}, ServerHostKeyAlgos: []string{gossh.KeyAlgoED25519},
		CiphersClientServer: ciphers, CiphersServerClient: ciphers,
		MACsClientServer: []string{gossh.HMACSHA256ETM}, MACsServerClient: []string{gossh.HMACSHA256ETM},
		CompressionClientServer: []string{"none"}, CompressionServerClient: []string{"none"},
	})
}

func TestReadHello(t *testing.T) {
	openssh := []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR, gossh.CipherAES256CTR, gossh.CipherAES128GCM, gossh.CipherAES256GCM}
	good := kexInit(openssh...)
	tests := []struct {
		name    string
		stream  []byte
		version string
		wantErr string
	}{
		{"OpenSSH", slices.Concat([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"), packet(good, 8)), "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", ""},
		{"bare newline", slices.Concat([]byte("SSH-2.0-x\n"), packet(good, 4)), "SSH-2.0-x", ""},
		{"lines before the version", slices.Concat([]byte("hello\r\nSSH-2.0-x\r\n"), packet(good, 4)), "SSH-2.0-x", ""},
		{"no version", []byte(strings.Repeat("junk\r\n", 20)), "", "no version line"},
		{"long version line", []byte("SSH-2.0-" + strings.Repeat("x", 300) + "\r\n"), "", "too long"},
		{"huge first packet", slices.Concat([]byte("SSH-2.0-x\r\n"), []byte{0x7f, 0, 0, 0}), "", "first packet of"},
		{"all padding", slices.Concat([]byte("SSH-2.0-x\r\n"), packet(nil, 16)), "", "all padding"},
		{"not a KEXINIT", slices.Concat([]byte("SSH-2.0-x\r\n"), packet([]byte{21, 0, 0, 0, 0}, 8)), "", "parse KEXINIT"},
		{"truncated", slices.Concat([]byte("SSH-2.0-x\r\n"), packet(good, 8)[:40]), "", "read KEXINIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := readHello(bufio.NewReader(bytes.NewReader(tc.stream)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != tc.version || !slices.Equal(h.CiphersClientServer, openssh) || !slices.Equal(h.CiphersServerClient, openssh) {
				t.Fatalf("got %+v", h)
			}
		})
	}
}

func TestForClient(t *testing.T) {
	withAES, withoutAES := StrongAlgorithms(true), StrongAlgorithms(false)
	ctr := []string{gossh.CipherAES128CTR, gossh.CipherAES256CTR}
	tests := []struct {
		name     string
		base     Algorithms
		c2s, s2c []string
		want     []string
	}{
		{"OpenSSH on AES CPUs: AES-GCM only", withAES, []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR, gossh.CipherAES128GCM},
			[]string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR, gossh.CipherAES128GCM}, []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM}},
		{"libssh2 1.10: unchanged", withAES, ctr, ctr, withAES.Ciphers},
		{"ChaCha20 only, on AES CPUs: unchanged", withAES, []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR}, []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR}, withAES.Ciphers},
		{"AEAD one way only: unchanged", withAES, []string{gossh.CipherAES128GCM}, ctr, withAES.Ciphers},
		{"no AES instructions: ChaCha20 and GCM", withoutAES, []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR},
			[]string{gossh.CipherChaCha20Poly1305, gossh.CipherAES128CTR}, []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES256GCM, gossh.CipherAES128GCM}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.base.forClient(clientHello{CiphersClientServer: tc.c2s, CiphersServerClient: tc.s2c})
			if !slices.Equal(got.Ciphers, tc.want) {
				t.Fatalf("ciphers %v, want %v", got.Ciphers, tc.want)
			}
			if !slices.Equal(got.KeyExchanges, tc.base.KeyExchanges) || !slices.Equal(got.MACs, tc.base.MACs) {
				t.Fatal("forClient changed more than the ciphers")
			}
		})
	}
}
