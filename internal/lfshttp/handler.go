// Package lfshttp serves the Git LFS HTTP API of a repository
// (/ORG/REPO.git/info/lfs/…): the batch API with the basic transfer
// adapter, object upload, download and verify, and the locks API. It is
// a transport only: every request is decided by the gateway (OpenLFS, the
// same decision as git-lfs-transfer over ssh), and what is stored,
// checked and locked is internal/lfs's, so both transports keep one set
// of objects, limits and lock rules.
package lfshttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"cpm/internal/access"
	"cpm/internal/gateway"
	"cpm/internal/lfs"
	"cpm/internal/names"
	"cpm/internal/printable"
)

// mediaType is the LFS API's JSON, in requests and answers.
const mediaType = "application/vnd.git-lfs+json"

// Handler answers LFS API requests after the HTTP server has
// authenticated them.
type Handler struct {
	Gateway *gateway.Gateway
	// BaseURL is the public base URL that actions point at
	// (http_url, such as https://git.example.com); "" derives it from
	// each request.
	BaseURL string
}

// request is one API request on its way: the decided repository and
// what the answer reported.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	id    access.Identity
	repo  names.RepoPath
	open  *gateway.LFSOpen
	stats lfs.Stats
	err   error // what the client was refused or failed with, for the log

	rest   string // the path after …/info/lfs
	remote string // the client's address
	raw    []byte // the body readJSON read, to relay it
	// token is the client's access token, to relay the request; relayed
	// and hops say who relayed it here and how often (gateway.LFSRequest);
	// base is the base URL the client used when another node relayed it.
	token, relayed, base string
	hops                 int
}

// ServeLFS answers one request with the identity and access token
// ("" for none) it authenticated with, from the client address remote
// (the HTTP server's reading of the connection and forwarded headers);
// rest is the path after /ORG/REPO.git/info/lfs, such as
// "/objects/batch".
func (h *Handler) ServeLFS(w http.ResponseWriter, r *http.Request, id access.Identity, token, remote string, repo names.RepoPath, rest string) {
	h.serve(&request{w: w, r: r, id: id, token: token, repo: repo, rest: rest, remote: remote})
}

// serve answers q, from a client or relayed by another node.
func (h *Handler) serve(q *request) {
	w, r, rest := q.w, q.r, q.rest
	route, ok := h.route(r.Method, rest)
	if !ok {
		q.fail(http.StatusNotFound, "cpm: no such Git LFS API path", nil)
		return
	}
	if route.method != r.Method {
		w.Header().Set("Allow", route.allow)
		q.fail(http.StatusMethodNotAllowed, "cpm: "+r.Method+" is not allowed here", nil)
		return
	}
	// Deferred: a panic in a route (which net/http recovers) must not
	// leave the write gate held.
	defer func() {
		if q.open != nil {
			q.open.Done(r.Context(), q.stats, q.err)
		}
	}()
	route.serve(q)
}

// route is one endpoint of the API: the method it answers and all its
// path's methods (for 405's Allow).
type route struct {
	method, allow string
	serve         func(q *request)
}

// route finds the endpoint of rest; for a path with several methods,
// the one asked for when it is one of them.
func (h *Handler) route(method, rest string) (route, bool) {
	post := func(serve func(q *request)) (route, bool) { return route{"POST", "POST", serve}, true }
	switch {
	case rest == "/objects/batch":
		return post(h.batch)
	case rest == "/verify":
		return post(h.verify)
	case strings.HasPrefix(rest, "/objects/"):
		oid := strings.TrimPrefix(rest, "/objects/")
		if method == http.MethodPut {
			return route{"PUT", "GET, PUT", func(q *request) { h.upload(q, oid) }}, true
		}
		return route{"GET", "GET, PUT", func(q *request) { h.download(q, oid) }}, true
	case rest == "/locks":
		if method == http.MethodPost {
			return route{"POST", "GET, POST", h.createLock}, true
		}
		return route{"GET", "GET, POST", h.listLocks}, true
	case rest == "/locks/verify":
		return post(h.verifyLocks)
	case strings.HasPrefix(rest, "/locks/") && strings.HasSuffix(rest, "/unlock"):
		id := strings.TrimSuffix(strings.TrimPrefix(rest, "/locks/"), "/unlock")
		return post(func(q *request) { h.unlock(q, id) })
	}
	return route{}, false
}

// decide opens the repository for a read or a write through the
// gateway; false when the client has been answered with the refusal.
func (h *Handler) decide(q *request, write bool) bool {
	req := gateway.LFSRequest{Identity: q.id, Repo: q.repo, Write: write, RemoteAddr: q.remote,
		Relayed: q.relayed, Hops: q.hops, Token: q.token}
	o, err := h.Gateway.OpenLFS(q.r.Context(), req)
	var away *gateway.LFSElsewhere
	if errors.As(err, &away) {
		h.relay(q, req, away)
		return false
	}
	if err != nil {
		q.refuse(err)
		return false
	}
	q.open = o
	return true
}

// refuse answers a decision of the gateway as githttp answers git's: a
// repository the identity may not read answers as a missing one does,
// with a request for credentials (401): no answer tells the two apart;
// 503 while this node cannot serve it (a lost lease, a primary that
// moved while the request was under way).
func (q *request) refuse(err error) {
	// An anonymous upload to a public repository is asked for
	// credentials, which git-lfs then gets from git's helper.
	code, challenge, retry := gateway.HTTPStatus(err, q.id == access.Anonymous)
	if challenge {
		q.w.Header().Set("WWW-Authenticate", gateway.HTTPChallenge)
	}
	if retry {
		q.w.Header().Set("Retry-After", "1")
	}
	q.fail(code, gateway.ClientLine(err), err)
}

// apiError is the API's error body.
type apiError struct {
	Message string `json:"message"`
}

// fail answers code with message; cause (nil: message) is what the log
// event records.
func (q *request) fail(code int, message string, cause error) {
	if cause == nil {
		cause = refusal(message)
	}
	q.err = cause
	q.reply(code, apiError{Message: message})
}

// reply answers code with v as the API's JSON.
func (q *request) reply(code int, v any) {
	q.w.Header().Set("Content-Type", mediaType)
	q.w.WriteHeader(code)
	json.NewEncoder(q.w).Encode(v)
}

// refusal is an answer that turned the request down, for the log.
type refusal string

func (r refusal) Error() string { return string(r) }
func (r refusal) Refusal() bool { return true }

// readJSON decodes the request's body of at most limit bytes into v,
// keeping it to relay; false when the client has been answered (415,
// 413 or 422).
func (q *request) readJSON(limit int64, v any) bool {
	// A browser may send a cross-site POST of text/plain with credentials
	// it has cached, without asking first; the API's own media type it
	// may not, so only that (or plain JSON) is read.
	if t, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type")); err != nil || (t != mediaType && t != "application/json") {
		q.fail(http.StatusUnsupportedMediaType, "cpm: Content-Type must be "+mediaType, nil)
		return false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, limit))
	q.raw = raw
	if err == nil {
		err = json.NewDecoder(bytes.NewReader(raw)).Decode(v)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return true // no body: every field left out
	case errors.As(err, &tooBig):
		q.fail(http.StatusRequestEntityTooLarge, "cpm: request body over its limit", nil)
		return false
	case err != nil:
		q.fail(http.StatusUnprocessableEntity, "cpm: malformed request: "+printable.Clip(err.Error()), nil)
		return false
	}
	return true
}

// context is the request's context.
func (q *request) context() context.Context { return q.r.Context() }
