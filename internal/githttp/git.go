package githttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cpm/internal/access"
	"cpm/internal/capbuf"
	"cpm/internal/gateway"
	"cpm/internal/gitservice"
	"cpm/internal/printable"
	"cpm/internal/shellquote"
)

// services are the only services served; upload-archive (and anything
// else) is refused, as http-backend does.
var services = map[string]gitservice.Service{
	"upload-pack":  gitservice.UploadPack,
	"receive-pack": gitservice.ReceivePack,
}

// infoRefs answers GET …/info/refs?service=git-SERVICE: the service's
// advertisement. Without a service (dumb HTTP) it is 404.
func (h *Handler) infoRefs(w http.ResponseWriter, r *http.Request, remote string, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.plain(w, r, remote, http.StatusMethodNotAllowed, "cpm: method not allowed\n")
		return
	}
	q := r.URL.Query().Get("service")
	if q == "" {
		h.plain(w, r, remote, http.StatusNotFound, "cpm: not found (cpm serves smart HTTP only; git 1.6.6 or newer)\n")
		return
	}
	name, isGit := strings.CutPrefix(q, "git-")
	svc, ok := services[name]
	if !isGit || !ok {
		h.plain(w, r, remote, http.StatusForbidden, "cpm: unsupported service\n")
		return
	}
	h.authenticated(w, r, remote, func(id access.Identity, token string) {
		h.serveGit(w, r, remote, rt, svc, gitservice.Advertise, id, token)
	})
}

// rpc answers POST …/git-SERVICE: one stateless round of the service.
func (h *Handler) rpc(w http.ResponseWriter, r *http.Request, remote string, rt route, name string) {
	svc := services[name]
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		h.plain(w, r, remote, http.StatusMethodNotAllowed, "cpm: method not allowed\n")
		return
	}
	if r.Header.Get("Content-Type") != "application/x-git-"+name+"-request" {
		h.plain(w, r, remote, http.StatusUnsupportedMediaType, "cpm: want Content-Type application/x-git-"+name+"-request\n")
		return
	}
	h.authenticated(w, r, remote, func(id access.Identity, token string) {
		h.serveGit(w, r, remote, rt, svc, gitservice.RPC, id, token)
	})
}

// serveGit runs the service through the gateway, like an ssh session of
// the same command: the decision, the relay to the primary, the gate,
// the hooks and the audit are the gateway's. Before git writes its first
// byte a refusal can still be a status code; after it, git's own
// protocol carries everything.
func (h *Handler) serveGit(w http.ResponseWriter, r *http.Request, remote string, rt route, svc gitservice.Service,
	mode gitservice.Stateless, id access.Identity, token string) {
	release, ok := h.Slots.take(id == access.Anonymous)
	if !ok {
		w.Header().Set("Retry-After", "5")
		h.plain(w, r, remote, http.StatusServiceUnavailable, "cpm: too many git requests at once; try again later\n")
		return
	}
	defer release()
	body, ok := h.body(w, r, remote, svc, mode)
	if !ok {
		return
	}
	proto := r.Header.Get("Git-Protocol")
	out := &answer{w: w, contentType: fmt.Sprintf("application/x-git-%s-result", svc)}
	if mode == gitservice.Advertise {
		out.contentType = fmt.Sprintf("application/x-git-%s-advertisement", svc)
		if svc != gitservice.UploadPack || gitservice.ProtocolVersion(proto) < 2 {
			out.preamble = gitservice.PktLine("# service=git-" + string(svc) + "\n")
		}
	}
	linger, cancel := h.linger(r.Context())
	defer cancel()
	// A refusal's line, not a relayed git's chatter.
	stderr := &capbuf.Buffer{Max: 4096, Quiet: true}
	s := gateway.Session{
		Identity: id, Command: "git-" + string(svc) + " " + shellquote.Always(rt.repo.String()+".git"),
		GitProtocol: proto, RemoteAddr: remote, Linger: linger, Stateless: mode, Transport: "http", Token: token,
		Stdout: out, Stderr: stderr,
	}
	if body != nil {
		s.Stdin = body
	}
	status, err := h.Gateway.Request(r.Context(), s)
	h.answer(w, r, remote, rt, id, out, body, stderr, status, err)
}

// body is an RPC request's body, read within its service's bound (nil
// for an advertisement); false when the client has been answered with
// why it cannot be read.
func (h *Handler) body(w http.ResponseWriter, r *http.Request, remote string, svc gitservice.Service, mode gitservice.Stateless) (*cappedReader, bool) {
	if mode != gitservice.RPC {
		return nil, true
	}
	limit := int64(0)
	if svc == gitservice.UploadPack {
		limit = maxNegotiation
	}
	body, err := requestBody(r, limit)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errEncoding) {
			code = http.StatusUnsupportedMediaType
		}
		h.plain(w, r, remote, code, "cpm: "+err.Error()+"\n")
		return nil, false
	}
	return body, true
}

// answer ends the request after the gateway ran it: git's answer when
// git wrote one, else a status code for what kept it from doing so.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, remote string, rt route, id access.Identity,
	out *answer, body *cappedReader, stderr *capbuf.Buffer, status int, err error) {
	switch {
	case out.started:
		return // git's answer, whole or cut short, is the client's
	case body != nil && body.over.Load():
		h.plain(w, r, remote, http.StatusRequestEntityTooLarge, "cpm: request too large\n")
	case err != nil:
		// This node's refusal, or the primary's of a relayed request
		// (in its words): the same status code either way.
		h.refuse(w, r, remote, id, err, stderr.String())
	case status != 0:
		// git gave up before its first byte: the request was not one git
		// reads (a malformed body). Its words are for the log, not an
		// echo to whoever sent it.
		h.Log.Info().Str("transport", "http").Str("repo", rt.repo.String()).Str("remote", remote).Int("exit", status).
			Str("stderr", printable.Cut(stderr.String(), 512)).Msg("git refused the request")
		h.plain(w, r, remote, http.StatusBadRequest, "cpm: bad request: git could not read it\n")
	default:
		out.start()
	}
}

// refuse answers a refusal with the ssh wording: for a repository that
// is missing or that the identity may not read, and for an anonymous
// push, 401 (asking for credentials) to an anonymous client and 404 to
// one with a valid token (a 401 would make git erase that token from
// its credential helper); 503 while this node cannot serve the
// repository (a lost lease, a primary that moved); 403 for other
// refusals; 5xx for faults.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, remote string, id access.Identity, err error, line string) {
	code, challenge, retry := gateway.HTTPStatus(err, id == access.Anonymous)
	if challenge {
		w.Header().Set("WWW-Authenticate", gateway.HTTPChallenge)
	}
	if retry {
		w.Header().Set("Retry-After", "1")
	}
	if line == "" {
		line = "cpm: internal error; try again later\n"
	}
	h.plain(w, r, remote, code, line)
}

// linger is the context a push runs in: not ended by its client hanging
// up, but by the request's time limit and the server's shutdown grace.
func (h *Handler) linger(ctx context.Context) (context.Context, context.CancelFunc) {
	base := h.Linger
	if base == nil {
		base = context.Background()
	}
	if end, ok := ctx.Deadline(); ok {
		return context.WithDeadline(base, end)
	}
	return context.WithCancel(base)
}

// answer is the response body git writes: the status line, headers and
// (for an advertisement) the service line go out at git's first byte,
// so that a refusal before it can still be a status code.
type answer struct {
	w           http.ResponseWriter
	contentType string
	preamble    []byte
	started     bool
}

func (a *answer) start() {
	if a.started {
		return
	}
	a.started = true
	hd := a.w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	hd.Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
	hd.Set("Pragma", "no-cache")
	a.w.WriteHeader(http.StatusOK)
	if len(a.preamble) > 0 {
		a.w.Write(a.preamble)
		a.w.Write([]byte(gitservice.Flush))
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.start()
	n, err := a.w.Write(p)
	if f, ok := a.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}
