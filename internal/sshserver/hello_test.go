package sshserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

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
			h, err := readHello(bufio.NewReader(bytes.NewReader(tc.stream)), func(string) {})
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

func TestKexInitDeadline(t *testing.T) {
	sent := time.Unix(1000, 0)
	at := sent.Add(30 * time.Millisecond)
	tests := []struct {
		version string
		want    time.Time
	}{
		{"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", sent.Add(helloWait)},
		{"SSH-2.0-dropbear_2022.83", sent.Add(helloWait)},
		{"SSH-2.0-PuTTY_Release_0.78", sent.Add(helloWait)},
		{"SSH-2.0-libssh2_1.10.0", sent.Add(helloWait)},
		{"SSH-2.0-libssh_0.10.6", sent.Add(helloWait)},
		{"SSH-2.0-paramiko_2.12.0", sent.Add(helloWait)},
		{"SSH-2.0-Go", sent.Add(helloWait)},
		{"SSH-2.0-JSCH-0.1.54", sent.Add(helloWait)},
		{"SSH-2.0-waiter", at.Add(kexInitWait)},
		{"SSH-2.0-openssh", at.Add(kexInitWait)},
		{"", at.Add(kexInitWait)},
	}
	for _, tc := range tests {
		if got := kexInitDeadline(tc.version, sent, at); !got.Equal(tc.want) {
			t.Errorf("%q: %s after the version went out, want %s", tc.version, got.Sub(sent), tc.want.Sub(sent))
		}
	}
}

// helloPair is a helloConn on a loopback connection and the client's end.
func helloPair(t *testing.T) (*helloConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := newHelloConn(newDeadlineConn(server, DefaultLimits, func() {}), serverVersion)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); hc.Close() })
	return hc, client
}

// A client that waits for the server's KEXINIT is let go soon after its
// version line; one known to speak first is waited for, even when slow.
func TestHelloWait(t *testing.T) {
	ciphers := []string{gossh.CipherAES128CTR, gossh.CipherAES128GCM}
	tests := []struct {
		name    string
		version string
		delay   time.Duration // before the KEXINIT; <0 for never
		wantOK  bool
		within  time.Duration
	}{
		{"waiter", "SSH-2.0-waiter", -1, false, 500 * time.Millisecond},
		{"quick unknown client", "SSH-2.0-other", 0, true, 500 * time.Millisecond},
		{"OpenSSH across an ocean", "SSH-2.0-OpenSSH_9.2p1", 300 * time.Millisecond, true, helloWait},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc, client := helloPair(t)
			start := time.Now()
			go func() {
				fmt.Fprintf(client, "%s\r\n", tc.version)
				if tc.delay >= 0 {
					time.Sleep(tc.delay)
					client.Write(packet(kexInit(ciphers...), 8))
				}
			}()
			h, ok := hc.wait()
			took := time.Since(start)
			if ok != tc.wantOK || took > tc.within {
				t.Fatalf("ok %v after %s, want %v within %s", ok, took, tc.wantOK, tc.within)
			}
			if ok && !slices.Equal(h.CiphersClientServer, ciphers) {
				t.Fatalf("hello %+v", h)
			}
		})
	}
}
