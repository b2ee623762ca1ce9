package lfshttp

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"cpm/internal/lfs"
	"cpm/internal/printable"
)

// Limits of a batch request: git-lfs sends 100 objects a batch; more
// than 1,000 only makes the answer (an href or two per object) large.
const (
	maxBatchObjects = 1000
	maxBatchBytes   = 2 << 20
)

// noBaseURL refuses a request whose answer would need a base URL the
// operator has not set (config.HTTP.TokenURL).
const noBaseURL = "cpm: this server has no http_url; its operator must set it to serve Git LFS over HTTP"

// actionTTL is how long the actions of a batch answer are offered for:
// the credential they carry may be a git-lfs-authenticate token that
// lives as long, and git-lfs asks again when they run out.
const actionTTL = 600

// batchRequest is POST /objects/batch.
type batchRequest struct {
	Operation string        `json:"operation"`
	Transfers []string      `json:"transfers"`
	HashAlgo  string        `json:"hash_algo"`
	Objects   []batchObject `json:"objects"`
}

type batchObject struct {
	OID  string `json:"oid"`
	Size int64  `json:"size"`
}

// batchError is a refusal of a whole batch, with its status.
type batchError struct {
	code int
	msg  string
}

func (e *batchError) Error() string { return e.msg }

// check validates a batch request as a whole: an operation of the API,
// the basic transfer adapter, SHA-256, and 1 to maxBatchObjects objects.
// Each object's id and size are judged on their own (objectError).
func (b batchRequest) check() *batchError {
	switch {
	case b.Operation != string(lfs.Upload) && b.Operation != string(lfs.Download):
		return &batchError{http.StatusUnprocessableEntity, fmt.Sprintf("cpm: operation %q: want upload or download", printable.Clip(b.Operation))}
	case len(b.Transfers) > 0 && !slices.Contains(b.Transfers, "basic"):
		return &batchError{http.StatusUnprocessableEntity, "cpm: this server speaks the basic transfer adapter only"}
	case b.HashAlgo != "" && b.HashAlgo != "sha256":
		return &batchError{http.StatusConflict, fmt.Sprintf("cpm: unsupported hash algorithm %q; this server stores sha256", printable.Clip(b.HashAlgo))}
	case len(b.Objects) == 0:
		return &batchError{http.StatusUnprocessableEntity, "cpm: a batch needs at least one object"}
	case len(b.Objects) > maxBatchObjects:
		return &batchError{http.StatusRequestEntityTooLarge, fmt.Sprintf("cpm: %d objects in one batch; at most %d", len(b.Objects), maxBatchObjects)}
	}
	return nil
}

// batchResponse is the answer to a batch.
type batchResponse struct {
	Transfer string         `json:"transfer"`
	Objects  []objectAnswer `json:"objects"`
	HashAlgo string         `json:"hash_algo"`
}

type objectAnswer struct {
	OID           string             `json:"oid"`
	Size          int64              `json:"size"`
	Authenticated bool               `json:"authenticated,omitempty"`
	Actions       map[string]action  `json:"actions,omitempty"`
	Error         *objectErrorAnswer `json:"error,omitempty"`
}

type action struct {
	Href      string            `json:"href"`
	Header    map[string]string `json:"header,omitempty"`
	ExpiresIn int               `json:"expires_in"`
}

type objectErrorAnswer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// batch answers POST /objects/batch: which objects to send or fetch,
// and where.
func (h *Handler) batch(q *request) {
	var b batchRequest
	if !q.readJSON(maxBatchBytes, &b) {
		return
	}
	if e := b.check(); e != nil {
		q.fail(e.code, e.msg, nil)
		return
	}
	op := lfs.Operation(b.Operation)
	if !h.decide(q, op == lfs.Upload) {
		return
	}
	base := h.objectsURL(q)
	if base == "" {
		q.fail(http.StatusInternalServerError, noBaseURL, nil)
		return
	}
	out := batchResponse{Transfer: "basic", HashAlgo: "sha256", Objects: make([]objectAnswer, 0, len(b.Objects))}
	for _, o := range b.Objects {
		a, err := h.answer(q, op, o, base)
		if err != nil {
			q.fail(http.StatusInternalServerError, "cpm: internal error; try again later", err)
			return
		}
		out.Objects = append(out.Objects, a)
	}
	q.reply(http.StatusOK, out)
}

// answer is the batch's answer for one object: its actions, nothing to
// do, or the object's own error (422 for an invalid or too large one,
// 404 for a download of one not stored).
func (h *Handler) answer(q *request, op lfs.Operation, o batchObject, base string) (objectAnswer, error) {
	a := objectAnswer{OID: o.OID, Size: o.Size}
	act, err := q.open.Plan(op, o.OID, o.Size)
	switch {
	case errors.Is(err, lfs.ErrInvalid), errors.Is(err, lfs.ErrTooLarge):
		a.OID = printable.Clip(o.OID)
		a.Error = &objectErrorAnswer{Code: http.StatusUnprocessableEntity, Message: "cpm: " + err.Error()}
		q.stats.Refused++
		return a, nil
	case err != nil:
		return a, err
	}
	header := actionHeader(q.r)
	href := base + "/" + o.OID
	switch act {
	case lfs.ActMissing:
		a.Error = &objectErrorAnswer{Code: http.StatusNotFound, Message: "cpm: object " + o.OID + " not found"}
	case lfs.ActDownload:
		a.Actions = map[string]action{"download": {Href: href, Header: header, ExpiresIn: actionTTL}}
	case lfs.ActUpload:
		a.Actions = map[string]action{
			"upload": {Href: href, Header: header, ExpiresIn: actionTTL},
			"verify": {Href: strings.TrimSuffix(base, "/objects") + "/verify", Header: header, ExpiresIn: actionTTL},
		}
	}
	return a, nil
}

// actionHeader is what the actions carry to authenticate as the batch
// did: a Bearer token (git-lfs-authenticate's, which git-lfs has from
// ssh and could not find for the href's host otherwise). Basic
// credentials are not repeated: git-lfs asks git's credential helper
// for the href's host, which is the one it asked for the batch.
func actionHeader(r *http.Request) map[string]string {
	if v := r.Header.Get("Authorization"); strings.HasPrefix(v, "Bearer ") {
		return map[string]string{"Authorization": v}
	}
	return nil
}

// objectsURL is where the repository's objects are, for actions: under
// the base URL (baseURL); "" when there is none.
func (h *Handler) objectsURL(q *request) string {
	base := h.baseURL(q)
	if base == "" {
		return ""
	}
	return base + "/" + q.open.Name.String() + ".git/info/lfs/objects"
}

// baseURL is the base URL that actions point at: the relaying node's
// for a relayed request, else BaseURL (config.HTTP.TokenURL). Never the
// request's Host or scheme, which the client or a proxy chose: an href
// to another host would carry the client's token there. "" when the
// operator has not set http_url where it is needed.
func (h *Handler) baseURL(q *request) string {
	if q.base != "" {
		return q.base
	}
	return strings.TrimRight(h.BaseURL, "/")
}
