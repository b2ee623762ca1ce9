package sshserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// serverVersion is the identification line cpm sends (RFC 4253 4.2).
const serverVersion = "SSH-2.0-cpm"

// How long the server waits for a client's KEXINIT before it offers its
// default algorithms. Every client measured (OpenSSH 9.2, dropbear
// 2022.83, PuTTY 0.78, libssh2 1.10, libssh 0.10, paramiko 2.12, Go's
// x/crypto, JSch 0.1.55) sends its KEXINIT without waiting for the
// server's, one round trip after the server's version line (on loopback
// within 2 ms of its own version line; JSch's JVM takes 300 ms). Waiting
// for those costs them nothing, so they get up to helloWait, whatever the
// round trip: OpenSSH keeps its AEAD cipher across an ocean. Any other
// client, which might wait for the server's KEXINIT first, gets
// kexInitWait after its version line. Waiting for the version line itself
// (up to helloWait) costs no one: x/crypto reads it before it sends the
// server's KEXINIT anyway.
const (
	helloWait   = time.Second
	kexInitWait = 100 * time.Millisecond
)

// speaksFirst are the version line prefixes of clients measured to send
// their KEXINIT without waiting for the server's.
var speaksFirst = []string{"SSH-2.0-OpenSSH", "SSH-2.0-dropbear", "SSH-2.0-PuTTY", "SSH-2.0-libssh",
	"SSH-2.0-paramiko", "SSH-2.0-Go", "SSH-2.0-JSCH"}

// kexInitDeadline is until when a client with this version line may take
// to send its KEXINIT, the server's version line having gone out at sent
// and the client's having arrived at versionAt. A client that lies about
// its version delays only itself, by at most helloWait.
func kexInitDeadline(version string, sent, versionAt time.Time) time.Time {
	for _, p := range speaksFirst {
		if strings.HasPrefix(version, p) {
			return sent.Add(helloWait)
		}
	}
	return versionAt.Add(kexInitWait)
}

// clientHello is what a client says in the clear before key exchange.
type clientHello struct {
	Version string
	// Ciphers the client offers, per direction, in its order.
	CiphersClientServer []string
	CiphersServerClient []string
}

// kexInitMsg is SSH_MSG_KEXINIT (RFC 4253 7.1).
type kexInitMsg struct {
	Cookie                  [16]byte `sshtype:"20"`
	KexAlgos                []string
	ServerHostKeyAlgos      []string
	CiphersClientServer     []string
	CiphersServerClient     []string
	MACsClientServer        []string
	MACsServerClient        []string
	CompressionClientServer []string
	CompressionServerClient []string
	LanguagesClientServer   []string
	LanguagesServerClient   []string
	FirstKexFollows         bool
	Reserved                uint32
}

// helloConn lets the server read the client's KEXINIT before x/crypto
// builds the server's, so that the offer can depend on it (see
// Algorithms.forClient); x/crypto takes one fixed configuration per
// connection and offers no hook after the client has spoken.
//
// It sends the server's version line itself, at once (OpenSSH clients
// send their KEXINIT only after reading it), and drops x/crypto's copy of
// that line. Every byte read while looking is handed to x/crypto
// unchanged and as soon as it arrives, so x/crypto still parses, checks
// and hashes the client's version and KEXINIT itself, and a client that
// waits for the server's KEXINIT before sending its own is not stuck:
// what cpm parses only chooses the offer.
type helloConn struct {
	*deadlineConn
	version  []byte
	sent     time.Time // when version went out
	wrote    atomic.Bool
	done     chan struct{}
	hello    clientHello // valid after done, if helloErr is nil
	helloErr error
	// versionSeen is closed when the client's version line has been read
	// (clientVersion then holds it, versionAt when) or the look ended.
	versionSeen chan struct{}
	// offer is what the server offers this client (see
	// Algorithms.forClient), set before x/crypto gets the connection.
	offer         Algorithms
	versionOnce   sync.Once
	clientVersion string
	versionAt     time.Time

	mu      sync.Mutex
	arrived sync.Cond
	seen    []byte // read while looking, not yet handed to x/crypto
	ioErr   error  // the read error that ended the look
}

// newHelloConn sends the server's version line (version, without its
// CR LF) and starts reading the client's hello.
func newHelloConn(dc *deadlineConn, version string) (*helloConn, error) {
	c := &helloConn{deadlineConn: dc, version: []byte(version + "\r\n"), done: make(chan struct{}),
		versionSeen: make(chan struct{})}
	c.arrived.L = &c.mu
	if _, err := dc.Write(c.version); err != nil {
		return nil, fmt.Errorf("send version: %w", err)
	}
	c.sent = time.Now()
	go c.look()
	return c, nil
}

func (c *helloConn) look() {
	c.hello, c.helloErr = readHello(bufio.NewReader(teeReader{c}), c.sawVersion)
	c.sawVersion("")
	c.mu.Lock()
	close(c.done)
	c.arrived.Broadcast()
	c.mu.Unlock()
}

// sawVersion records the client's version line, the first time only.
func (c *helloConn) sawVersion(v string) {
	c.versionOnce.Do(func() {
		c.clientVersion, c.versionAt = v, time.Now()
		close(c.versionSeen)
	})
}

// looking reports whether look is still reading; call it with mu held.
func (c *helloConn) looking() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// teeReader reads the connection for look and keeps what it read for
// x/crypto.
type teeReader struct{ c *helloConn }

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.c.deadlineConn.Read(p)
	t.c.mu.Lock()
	t.c.seen = append(t.c.seen, p[:n]...)
	if err != nil && t.c.ioErr == nil {
		t.c.ioErr = err
	}
	t.c.arrived.Broadcast()
	t.c.mu.Unlock()
	return n, err
}

// wait returns the client's hello once it has arrived, or false when it
// is late (see kexInitDeadline), malformed or the connection failed.
func (c *helloConn) wait() (clientHello, bool) {
	t := time.NewTimer(time.Until(c.sent.Add(helloWait)))
	defer t.Stop()
	select {
	case <-c.versionSeen:
	case <-t.C:
		return clientHello{}, false
	}
	t.Reset(time.Until(kexInitDeadline(c.clientVersion, c.sent, c.versionAt)))
	select {
	case <-c.done:
		return c.hello, c.helloErr == nil
	case <-t.C:
		return clientHello{}, false
	}
}

// Read hands x/crypto the bytes read while looking, then reads the
// connection itself. Only x/crypto's reader calls it, one call at a time.
func (c *helloConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.seen) == 0 && c.looking() {
		c.arrived.Wait()
	}
	if len(c.seen) > 0 {
		n := copy(p, c.seen)
		c.seen = c.seen[n:]
		c.mu.Unlock()
		return n, nil
	}
	err := c.ioErr
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.deadlineConn.Read(p)
}

// Write drops x/crypto's version line: the client has it already.
func (c *helloConn) Write(p []byte) (int, error) {
	if c.wrote.CompareAndSwap(false, true) && bytes.Equal(p, c.version) {
		return len(p), nil
	}
	return c.deadlineConn.Write(p)
}

const (
	maxVersionLine   = 255   // RFC 4253 4.2
	maxHelloLines    = 16    // lines before the version: clients send none
	maxInitialPacket = 35000 // RFC 4253 6.1
)

// readHello reads a client's version line, tells sawVersion, and reads
// its first binary packet, which must be its KEXINIT, sent before any
// cipher is agreed.
func readHello(r *bufio.Reader, sawVersion func(string)) (clientHello, error) {
	var h clientHello
	for range maxHelloLines {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return h, fmt.Errorf("read version: %w", err)
		}
		if len(line) > maxVersionLine+2 {
			return h, errors.New("version line too long")
		}
		if bytes.HasPrefix(line, []byte("SSH-")) {
			h.Version = string(bytes.TrimRight(line, "\r\n"))
			break
		}
	}
	if h.Version == "" {
		return h, errors.New("no version line")
	}
	sawVersion(h.Version)
	var length [4]byte
	if _, err := io.ReadFull(r, length[:]); err != nil {
		return h, fmt.Errorf("read KEXINIT: %w", err)
	}
	n := binary.BigEndian.Uint32(length[:])
	if n < 12 || n > maxInitialPacket {
		return h, fmt.Errorf("first packet of %d bytes", n)
	}
	packet := make([]byte, n)
	if _, err := io.ReadFull(r, packet); err != nil {
		return h, fmt.Errorf("read KEXINIT: %w", err)
	}
	padding := int(packet[0])
	if padding+1 >= len(packet) {
		return h, errors.New("first packet is all padding")
	}
	var msg kexInitMsg
	if err := gossh.Unmarshal(packet[1:len(packet)-padding], &msg); err != nil {
		return h, fmt.Errorf("parse KEXINIT: %w", err)
	}
	h.CiphersClientServer, h.CiphersServerClient = msg.CiphersClientServer, msg.CiphersServerClient
	return h, nil
}
