// Package githttp serves git over HTTP(S): smart HTTP (protocol v0, v1
// and v2; no dumb HTTP), `go get`'s go-import answer, and the mount of
// the Git LFS HTTP API. Each request is authenticated in one place
// (Basic with a token as the password, Bearer, or anonymous) and then
// goes through the same gateway step as an ssh session
// (gateway.Request): the same decision, relay to a repository's primary,
// write gate, hooks, audit and metrics.
package githttp

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/clientaddr"
	"cpm/internal/gateway"
	"cpm/internal/names"
	"cpm/internal/printable"
)

// Handler answers every request of the HTTP listener.
type Handler struct {
	Gateway *gateway.Gateway
	// Tokens identifies access tokens; nil: every credential is refused.
	Tokens gateway.TokenIdentifier
	// Limiter slows down failed authentications per client address; nil:
	// none.
	Limiter Limiter
	// Slots bound the git requests served at once; nil: no bound.
	Slots *Slots
	// LFS serves /ORG/REPO.git/info/lfs/…; nil: 404.
	LFS LFS
	// ProxyAllow are the reverse proxies whose forwarded-for headers
	// name the client.
	ProxyAllow []netip.Prefix
	// ForwardedHeader is the one of them believed (http_forwarded_header).
	ForwardedHeader clientaddr.Header
	// BaseURL is the public URL of this listener (http_url), without a
	// trailing slash: go-import names repositories under it.
	BaseURL string
	// Linger is what a push runs in past its client: it ends when the
	// server's shutdown grace is over (httpserver.Server.Stopped).
	Linger context.Context
	Log    zerolog.Logger
}

// Limiter counts failed authentications per client address.
type Limiter interface {
	Allow(addr string) bool
	Failed(addr string)
}

// LFS is the Git LFS HTTP API (internal/lfshttp): rest is the path after
// /ORG/REPO.git/info/lfs, such as "/objects/batch".
type LFS interface {
	ServeLFS(w http.ResponseWriter, r *http.Request, id access.Identity, token, remote string, repo names.RepoPath, rest string)
}

// maxPath bounds a request's path: repository names are short, and so
// are Go package paths below them.
const maxPath = 1024

// ServeHTTP routes by path: /ORG/REPO[.git]/info/refs, …/git-upload-pack,
// …/git-receive-pack, …/info/lfs/…, and ?go-get=1 on a repository or a
// package path below it. Anything else, dumb HTTP's files included, is
// 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	remote, err := h.remoteAddr(r)
	if err != nil {
		h.plain(w, r, r.RemoteAddr, http.StatusBadRequest, "cpm: bad request (an unreadable forwarded-for address)\n")
		return
	}
	rt, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		h.plain(w, r, remote, http.StatusNotFound, "cpm: not found\n")
		return
	}
	if r.URL.Query().Get("go-get") == "1" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.authenticated(w, r, remote, func(id access.Identity, _ string) { h.goGet(w, r, remote, rt, id) })
		return
	}
	switch {
	case rt.rest == "/info/refs":
		h.infoRefs(w, r, remote, rt)
	case rt.rest == "/git-upload-pack" || rt.rest == "/git-receive-pack":
		h.rpc(w, r, remote, rt, strings.TrimPrefix(rt.rest, "/git-"))
	case rt.dotGit && (rt.rest == "/info/lfs" || strings.HasPrefix(rt.rest, "/info/lfs/")):
		h.authenticated(w, r, remote, func(id access.Identity, token string) {
			if h.LFS == nil {
				h.plain(w, r, remote, http.StatusNotFound, "cpm: Git LFS is served over ssh only here\n")
				return
			}
			h.LFS.ServeLFS(w, r, id, token, remote, rt.repo, strings.TrimPrefix(rt.rest, "/info/lfs"))
		})
	default:
		h.plain(w, r, remote, http.StatusNotFound, "cpm: not found (cpm serves smart HTTP only)\n")
	}
}

// route is a request's repository and the path below it.
type route struct {
	repo   names.RepoPath
	dotGit bool   // named ORG/REPO.git
	rest   string // "" or "/…"
}

// parseRoute takes the request's escaped path. Any escape at all, a
// backslash, an empty, "." or ".." segment, or a name cpm would refuse
// over ssh is no route: no valid request needs them, and a path that
// means one thing here and another to a proxy or the file system is how
// traversal starts.
func parseRoute(p string) (route, bool) {
	if len(p) > maxPath || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "%\\\x00") {
		return route{}, false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "" && i != len(segs)-1 || s == "." || s == ".." {
			return route{}, false
		}
	}
	if len(segs) < 2 {
		return route{}, false
	}
	repo, err := names.ParseRepoPath(segs[0] + "/" + segs[1])
	if err != nil {
		return route{}, false
	}
	rest := ""
	if len(segs) > 2 {
		rest = "/" + strings.Join(segs[2:], "/")
	}
	return route{repo: repo, dotGit: strings.HasSuffix(segs[1], ".git"), rest: rest}, true
}

// plain answers with a status and a text body, and logs the request
// (its path without the query, which may carry a secret).
func (h *Handler) plain(w http.ResponseWriter, r *http.Request, remote string, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(body))
	h.Log.Info().Str("transport", "http").Str("method", printable.Cut(r.Method, 16)).
		Str("path", printable.Cut(r.URL.EscapedPath(), 256)).Str("remote", remote).Int("status", code).Msg("http")
}
