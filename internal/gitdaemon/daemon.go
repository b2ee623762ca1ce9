// Package gitdaemon serves public repositories read-only over the git://
// protocol: git-upload-pack only, no authentication, nothing private, with
// a cap on connections and deadlines on every step.
package gitdaemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/discover"
	"cpm/internal/gitservice"
	"cpm/internal/listener"
	"cpm/internal/printable"
	"cpm/internal/repos"
)

// Server is a git:// listener.
type Server struct {
	Access         access.Checker
	Disk           repos.Root
	Log            zerolog.Logger
	MaxConns       int           // concurrent connections (default 64)
	RequestTimeout time.Duration // to read the request line (default 10s)
	IdleTimeout    time.Duration // git upload-pack --timeout (default 10m)
	// Identity, when set, is the answer to a discovery probe (see
	// internal/discover); git clients never send one.
	Identity []byte
	// Elsewhere, when set, serves a fetch on the repository's primary
	// node when this node's copy is not current (a cluster), and reports
	// whether it did; nil: always here.
	Elsewhere func(ctx context.Context, grant access.Grant, protocol, remote string, conn io.ReadWriter) (bool, int, error)
	// Fence, on a cluster node, says whether its lease holds: while it
	// does not, every request is refused. Nil: never fenced.
	Fence interface{ Held() bool }

	mu      sync.Mutex
	ln      []net.Listener
	closing bool
	conns   sync.WaitGroup
	// stop ends the fetches still running when Shutdown gives up on them.
	ctx  context.Context
	stop context.CancelFunc
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	limit := s.MaxConns
	if limit <= 0 {
		limit = 64
	}
	slots := make(chan struct{}, limit)
	s.mu.Lock()
	s.ln = append(s.ln, ln)
	if s.ctx == nil {
		s.ctx, s.stop = context.WithCancel(context.Background())
	}
	ctx := s.ctx
	s.mu.Unlock()
	stopping := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closing
	}
	return listener.Serve(ln, stopping, func(c net.Conn) {
		select {
		case slots <- struct{}{}:
		default:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			writeErr(c, "too many connections; try again later")
			c.Close()
			return
		}
		s.conns.Add(1)
		go func() {
			defer func() { <-slots; s.conns.Done() }()
			s.handle(ctx, c)
		}()
	})
}

// Shutdown stops accepting and waits for running fetches until ctx ends;
// then it kills those that are left.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.ln {
		ln.Close()
	}
	stop := s.stop
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if stop != nil {
			stop()
		}
	}
}

// Request is a parsed git:// request line.
type Request struct {
	Service string
	Path    string
	Host    string
	Extra   []string // e.g. "version=2"
}

// maxPkt is the largest pkt-line git sends (65520 bytes incl. header).
const maxPkt = 65520

// ReadRequest reads the first pkt-line: "git-upload-pack /path\0host=h\0\0version=2\0".
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Request{}, fmt.Errorf("read request: %w", err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil || n < 5 || n > maxPkt {
		return Request{}, errors.New("malformed request")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return Request{}, fmt.Errorf("read request: %w", err)
	}
	body = bytes.TrimSuffix(body, []byte("\n"))
	parts := strings.Split(string(body), "\x00")
	if parts[0] == discover.Request {
		return Request{Service: discover.Request}, nil
	}
	service, path, ok := strings.Cut(parts[0], " ")
	if !ok {
		return Request{}, errors.New("malformed request")
	}
	req := Request{Service: service, Path: path}
	extra := false
	for _, p := range parts[1:] {
		switch {
		case p == "":
			extra = true // an empty field separates host from extra parameters
		case extra:
			req.Extra = append(req.Extra, p)
		case strings.HasPrefix(p, "host="):
			req.Host = strings.TrimPrefix(p, "host=")
		}
	}
	return req, nil
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	start := time.Now()
	remote := c.RemoteAddr().String()
	timeout := s.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c.SetDeadline(time.Now().Add(timeout))
	req, err := ReadRequest(c)
	if err != nil {
		s.Log.Debug().Str("remote", remote).Err(err).Msg("git:// request")
		return
	}
	if req.Service == discover.Request && s.Identity != nil {
		c.Write(s.Identity)
		s.Log.Info().Str("transport", "git").Str("remote", remote).Str("command", req.Service).
			Str("decision", "identify").Int64("duration_ms", time.Since(start).Milliseconds()).Msg("session")
		return
	}
	status, err := s.serve(ctx, c, req)
	o := access.OutcomeOf(err)
	ev := s.Log.Info()
	if o == access.Failed {
		ev = s.Log.Error().Err(err)
	}
	ev.Str("transport", "git").Str("remote", remote).Str("command", req.Service).
		Str("repo", req.Path).Str("decision", o.String()).Int("status", status).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("session")
}

// serve authorizes the request as an anonymous reader and runs
// upload-pack on the connection. A refusal is told to the client in an
// ERR packet before anything else is sent.
func (s *Server) serve(ctx context.Context, c net.Conn, req Request) (int, error) {
	refuse := func(err error) (int, error) {
		writeErr(c, clientMessage(err))
		return 1, err
	}
	if req.Service != "git-upload-pack" {
		return refuse(notEnabled(printable.Cut(req.Service, 64)))
	}
	if s.Fence != nil && !s.Fence.Held() {
		return refuse(fenced{})
	}
	// The same strict grammar as over ssh.
	cmd, err := command.Parse("git-upload-pack " + req.Path)
	if err != nil {
		return refuse(&access.Error{Kind: access.NotFound, Repo: printable.Cut(req.Path, 64)})
	}
	grant, err := s.Access.Authorize(ctx, access.Anonymous, cmd.Repo, authz.Read)
	if err != nil {
		return refuse(err)
	}
	var protocol string
	for _, e := range req.Extra {
		if strings.HasPrefix(e, "version=") {
			protocol = e
		}
	}
	c.SetDeadline(time.Time{})
	if s.Elsewhere != nil {
		if elsewhere, status, err := s.Elsewhere(ctx, grant, protocol, c.RemoteAddr().String(), c); elsewhere {
			return status, err
		}
	}
	dir, err := s.Disk.Open(grant.Repo.Org, grant.Repo.Repo)
	if err != nil {
		return refuse(fmt.Errorf("open %s: %w", grant.Repo, err))
	}
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	g := gitservice.Command(ctx, gitservice.Request{
		Service: gitservice.UploadPack, Dir: dir, Protocol: protocol,
		Args: []string{"--timeout=" + strconv.Itoa(int(idle.Seconds()))},
	})
	o := gitservice.Run(ctx, g, gitservice.Streams{Stdin: c, Stdout: c})
	if o.Err != nil && ctx.Err() == nil {
		// Too late for an ERR packet: the client is reading a pack.
		return o.Status, fmt.Errorf("upload-pack %s: %w", grant.Repo, o.Err)
	}
	return o.Status, nil
}

// fenced refuses every request while this cluster node's lease does not
// hold: it cannot prove that its copy is current.
type fenced struct{}

func (fenced) Error() string { return "this node lost its lease; try again" }
func (fenced) Refusal() bool { return true }

// notEnabled refuses a service git:// does not offer.
type notEnabled string

func (n notEnabled) Error() string { return "service not enabled: " + string(n) }
func (n notEnabled) Refusal() bool { return true }

// clientMessage is what an anonymous client is told: which service is
// not offered, and for every other refusal or fault the words of a
// missing repository, so that nothing private shows.
func clientMessage(err error) string {
	var n notEnabled
	if errors.As(err, &n) {
		return n.Error()
	}
	if errors.As(err, new(fenced)) {
		return fenced{}.Error()
	}
	return "repository not found"
}

// writeErr sends git's "ERR" packet, which the client prints.
func writeErr(w io.Writer, msg string) {
	w.Write(gitservice.PktLine("ERR " + msg + "\n"))
}
