// Package sshserver is cpm's embedded SSH server. It accepts public-key
// authentication only, identifies a connection by the key the client
// signed with, allows exactly one exec per session (plus a shell request
// that only gets a greeting) and refuses everything else an SSH server
// usually offers: ptys, subsystems, agent and X11 forwarding, port
// forwarding, environment variables other than GIT_PROTOCOL.
package sshserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	"github.com/rs/zerolog"
	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/access"
	"cpm/internal/certauth"
	"cpm/internal/gateway"
	"cpm/internal/listener"
)

// Limits bound what one client can hold.
type Limits struct {
	HandshakeTimeout time.Duration // from accept to the first session
	IdleTimeout      time.Duration // no bytes either way
	MaxSessionTime   time.Duration // whole connection
	Startups         Startups      // connections not yet authenticated
	MaxSessions      int           // concurrent sessions per connection
	MaxAuthTries     int
}

// DefaultLimits suit a team's server: a slow clone of a large repository
// is never idle for 10 minutes (git sends keepalives while it packs).
var DefaultLimits = Limits{
	HandshakeTimeout: 20 * time.Second,
	IdleTimeout:      10 * time.Minute,
	MaxSessionTime:   6 * time.Hour,
	Startups:         Startups{Start: 128, Rate: 30, Full: 256, PerSource: 100},
	MaxSessions:      4,
	MaxAuthTries:     6,
}

// Server serves git over ssh through a gateway.
type Server struct {
	gw *gateway.Gateway
	// Certs, when set, lets user certificates of trusted authorities in.
	Certs *certauth.Checker
	// Dropped, when set, counts each connection dropped for want of an
	// unauthenticated slot, by reason (dropLog shows only a sample).
	Dropped    func(reason string)
	limits     Limits
	algorithms Algorithms
	log        zerolog.Logger
	srv        *ssh.Server
	startups   *startupGate
	// dropLog is sampled: a flood of connections is not a flood of lines.
	dropLog zerolog.Logger

	mu        sync.Mutex
	listeners []net.Listener
	closing   bool
	sessions  sync.WaitGroup
	// stopped ends when Shutdown gives up waiting: pushes that outlived
	// their client (see linger) are killed then.
	stopped context.Context
	stop    context.CancelFunc
	// draining ends when Shutdown begins: a long-lived session (a
	// replication session) ends at its next boundary then instead of
	// holding the shutdown for its whole grace.
	draining context.Context
	drain    context.CancelFunc
}

// Context keys. The fingerprint travels in gossh.Permissions, which
// x/crypto hands to the connection only for the key that authenticated.
type ctxKey string

const (
	connKey        ctxKey = "cpm-conn"
	helloKey       ctxKey = "cpm-hello"
	fingerprintExt        = "cpm-fingerprint"
	// A certificate's user, key id, serial, authority and forced command.
	certUserExt   = "cpm-cert-user"
	certKeyIDExt  = "cpm-cert-key-id"
	certSerialExt = "cpm-cert-serial"
	certCAExt     = "cpm-cert-ca"
	forceCmdExt   = "cpm-force-command"
)

// New makes a server with the given host key.
func New(gw *gateway.Gateway, hostKey gossh.Signer, limits Limits, log zerolog.Logger) *Server {
	s := &Server{gw: gw, limits: limits, log: log, startups: newStartupGate(limits.Startups),
		dropLog:    log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		algorithms: StrongAlgorithms(HasAESHardware())}
	s.stopped, s.stop = context.WithCancel(context.Background())
	s.draining, s.drain = context.WithCancel(context.Background())
	s.srv = &ssh.Server{
		// No Version: serverConfig sets each connection's, which says
		// whether this node is fenced (see versionLine).
		HostSigners: []ssh.Signer{hostKey},
		Handler:     s.handle,
		// Identity comes from our own PublicKeyCallback (see serverConfig),
		// so gliderlabs has no auth handler and turns on NoClientAuth.
		ServerConfigCallback: func(ctx ssh.Context) *gossh.ServerConfig { return s.serverConfig(ctx) },
		ConnCallback: func(ctx ssh.Context, c net.Conn) net.Conn {
			if hc, ok := c.(*helloConn); ok {
				ctx.SetValue(connKey, hc.deadlineConn)
				ctx.SetValue(helloKey, hc)
			}
			return c
		},
		ConnectionFailedCallback: func(c net.Conn, err error) {
			s.log.Debug().Str("remote", c.RemoteAddr().String()).Err(err).Msg("handshake failed")
		},
		// Only sessions; no direct-tcpip, no tcpip-forward, no subsystems.
		ChannelHandlers:   map[string]ssh.ChannelHandler{"session": s.sessionChannel},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		PtyCallback:       func(ssh.Context, ssh.Pty) bool { return false },
	}
	return s
}

func (s *Server) serverConfig(ctx context.Context) *gossh.ServerConfig {
	c := &gossh.ServerConfig{
		MaxAuthTries: s.limits.MaxAuthTries,
		// gliderlabs sets NoClientAuth because it has no auth handler of its
		// own; "none" must still fail, and only "publickey" is advertised.
		NoClientAuth: true,
		NoClientAuthCallback: func(gossh.ConnMetadata) (*gossh.Permissions, error) {
			return nil, errors.New("public key required")
		},
		// A fresh Permissions for every key: gliderlabs' own handler shares
		// one object across every key a client offers, so the last offered
		// key, not the one that signed, would win (CVE-2024-45337 class).
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if s.stopping() {
				return nil, s.refuse(ctx, "cpm: server is shutting down; try again")
			}
			if cert, ok := key.(*gossh.Certificate); ok {
				return s.certPermissions(ctx, meta, cert)
			}
			fp := gossh.FingerprintSHA256(key)
			if _, err := s.gw.Access.Identify(ctx, fp); errors.Is(err, access.ErrUnknownKey) {
				return nil, errors.New("unknown key")
			} else if err != nil {
				// Not an answer about the key (the store is closing, or
				// failing): the client must not read it as "Permission denied".
				if s.stopping() {
					return nil, s.refuse(ctx, "cpm: server is shutting down; try again")
				}
				if p := s.fencedPermissions(fp); p != nil {
					return p, nil
				}
				s.log.Error().Err(err).Str("key", fp).Msg("identify")
				return nil, s.refuse(ctx, "cpm: internal error; try again later")
			}
			return &gossh.Permissions{Extensions: map[string]string{fingerprintExt: fp}}, nil
		},
	}
	algorithms := s.algorithms
	c.ServerVersion = serverVersion
	if hc, ok := ctx.Value(helloKey).(*helloConn); ok {
		algorithms = hc.offer
		c.ServerVersion = strings.TrimSuffix(string(hc.version), "\r\n")
	}
	algorithms.apply(&c.Config)
	c.PublicKeyAuthAlgorithms = slices.Clone(algorithms.PublicKeyAuths)
	return c
}

// refuse ends an authentication that cannot be answered: the client
// prints msg (an SSH banner), and the connection closes before it can try
// another key and end with "Permission denied".
func (s *Server) refuse(ctx context.Context, msg string) error {
	if dc, ok := ctx.Value(connKey).(*deadlineConn); ok {
		time.AfterFunc(200*time.Millisecond, func() { dc.Close() })
	}
	return &gossh.BannerError{Err: errors.New(msg), Message: msg + "\n"}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return errors.New("server closed")
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	return listener.Serve(ln, s.stopping, func(c net.Conn) { go s.admit(c) })
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// admit takes a connection into an unauthenticated slot or drops it at
// once (see Startups). Waiting for a slot instead would let idle
// connections hold everyone else's connections too.
func (s *Server) admit(c net.Conn) {
	leave, reason := s.startups.enter(c.RemoteAddr())
	if reason != "" {
		s.dropLog.Warn().Str("remote", c.RemoteAddr().String()).Str("reason", reason).
			Msg("too many unauthenticated connections; dropped")
		if s.Dropped != nil {
			s.Dropped(reason)
		}
		c.Close()
		return
	}
	dc := newDeadlineConn(c, s.limits, leave)
	hc, err := newHelloConn(dc, s.versionLine())
	if err != nil {
		s.log.Debug().Str("remote", c.RemoteAddr().String()).Err(err).Msg("handshake failed")
		dc.Close()
		return
	}
	// Waiting for the client's hello here, not in serverConfig: gliderlabs
	// calls that under its server-wide lock, and a client slow to speak
	// held up every other handshake behind a waiting writer of that lock.
	hc.offer = s.algorithms
	if hello, ok := hc.wait(); ok {
		hc.offer = s.algorithms.forClient(hello)
	}
	s.srv.HandleConn(hc)
}

// Shutdown stops accepting, lets running sessions (pushes, also those
// whose client has gone) finish until ctx ends, then kills what is left
// and closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stop()
	s.drain()
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.sessions.Wait(); close(done) }()
	select {
	case <-done:
		// Give clients a moment to read their exit status and hang up.
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if s.srv.Shutdown(sctx) == nil {
			return nil
		}
	case <-ctx.Done():
	}
	s.stop()
	err := s.srv.Close()
	// The sessions left are being killed; wait for that, or a push that
	// outlived its client would outlive the server too.
	select {
	case <-done:
	case <-time.After(killWait):
	}
	return err
}

type sessionCount struct{ n atomic.Int32 }

func (s *Server) sessionChannel(srv *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	if dc, ok := ctx.Value(connKey).(*deadlineConn); ok {
		dc.authenticated()
	}
	count, _ := ctx.Value(ctxKey("sessions")).(*sessionCount)
	if count == nil {
		count = &sessionCount{}
		ctx.SetValue(ctxKey("sessions"), count)
	}
	if count.n.Add(1) > int32(s.limits.MaxSessions) {
		count.n.Add(-1)
		nc.Reject(gossh.ResourceShortage, "too many sessions on this connection")
		return
	}
	defer count.n.Add(-1)
	ssh.DefaultSessionHandler(srv, conn, filteredChannel{NewChannel: nc}, ctx)
}

func (s *Server) handle(sess ssh.Session) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		fmt.Fprintln(sess.Stderr(), "cpm: server is shutting down; try again")
		sess.Exit(1)
		return
	}
	s.sessions.Add(1)
	s.mu.Unlock()
	defer s.sessions.Done()

	ctx := sess.Context()
	conn, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	if conn == nil || conn.Permissions == nil || conn.Permissions.Extensions[fingerprintExt] == "" {
		sess.Exit(1)
		return
	}
	ext := conn.Permissions.Extensions
	if s.refuseFenced(sess, conn, ext) {
		return
	}
	id, err := s.identify(ctx, ext)
	if err != nil {
		if !errors.Is(err, access.ErrUnknownKey) {
			s.log.Error().Err(err).Msg("identify")
		}
		fmt.Fprintln(sess.Stderr(), "cpm: key is no longer registered")
		sess.Exit(1)
		return
	}
	var proto string
	for _, kv := range sess.Environ() {
		if v, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok {
			proto = v
		}
	}
	command := sess.RawCommand()
	if fc, ok := ext[forceCmdExt]; ok {
		// The certificate's force-command runs, whatever the client asked.
		command = fc
	}
	linger, cancel := s.linger(ctx)
	defer cancel()
	code := s.gw.Serve(ctx, gateway.Session{
		Identity:    id,
		Command:     command,
		GitProtocol: proto,
		RemoteAddr:  sess.RemoteAddr().String(),
		Linger:      linger,
		Draining:    s.draining,
		Stdin:       sess,
		Stdout:      sess,
		Stderr:      sess.Stderr(),
	})
	sess.Exit(code)
}

// certPermissions authenticates a user certificate (see certauth): the
// permissions carry who it is, and its source-address for x/crypto to
// enforce against the client's address.
func (s *Server) certPermissions(ctx context.Context, meta gossh.ConnMetadata, cert *gossh.Certificate) (*gossh.Permissions, error) {
	if s.Certs == nil {
		return nil, errors.New("certificates are not accepted")
	}
	r, err := s.Certs.Check(ctx, cert)
	if errors.Is(err, certauth.ErrRefused) {
		s.log.Info().Str("remote", meta.RemoteAddr().String()).Str("cert_key_id", cert.KeyId).
			Uint64("cert_serial", cert.Serial).Str("reason", err.Error()).Msg("certificate refused")
		return nil, err
	}
	if err != nil {
		if p := s.fencedPermissions(gossh.FingerprintSHA256(cert)); p != nil {
			return p, nil
		}
		s.log.Error().Err(err).Str("cert_key_id", cert.KeyId).Msg("check certificate")
		return nil, s.refuse(ctx, "cpm: internal error; try again later")
	}
	p := &gossh.Permissions{Extensions: map[string]string{
		fingerprintExt: r.Owner.Fingerprint, certUserExt: r.Owner.User, certKeyIDExt: r.KeyID,
		certSerialExt: strconv.FormatUint(r.Serial, 10), certCAExt: r.CA,
	}}
	if _, ok := cert.CriticalOptions["force-command"]; ok {
		p.Extensions[forceCmdExt] = r.ForceCommand
	}
	if r.SourceAddress != "" {
		p.CriticalOptions = map[string]string{"source-address": r.SourceAddress}
	}
	return p, nil
}

// identify is who the connection's key or certificate speaks for now.
func (s *Server) identify(ctx context.Context, ext map[string]string) (access.Identity, error) {
	if user := ext[certUserExt]; user != "" {
		id, err := s.gw.Access.IdentifyUser(ctx, user)
		if err != nil {
			return id, err
		}
		serial, _ := strconv.ParseUint(ext[certSerialExt], 10, 64)
		id.Fingerprint = ext[fingerprintExt]
		id.Cert = &access.CertInfo{KeyID: ext[certKeyIDExt], Serial: serial, CA: ext[certCAExt]}
		return id, nil
	}
	return s.gw.Access.Identify(ctx, ext[fingerprintExt])
}

// LoadOrCreateHostKey reads the ed25519 host key at path, creating it
// (0600) on first start. A key readable by others is refused, as OpenSSH
// refuses it.
func LoadOrCreateHostKey(path string) (gossh.Signer, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := generateHostKey(path); err != nil {
			return nil, err
		}
		fi, err = os.Stat(path)
	}
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("host key %s: permissions %04o are too open; chmod 600 it", path, fi.Mode().Perm())
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	return signer, nil
}
