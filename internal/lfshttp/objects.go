package lfshttp

import (
	"errors"
	"net/http"
	"strconv"

	"cpm/internal/lfs"
	"cpm/internal/printable"
)

// upload stores PUT /objects/OID: the body, of the length its
// Content-Length announces, is kept only when its size and SHA-256 match
// the id (lfs.Repo.Store, as over ssh).
func (h *Handler) upload(q *request, oid string) {
	if !h.decide(q, true) {
		return
	}
	size := q.r.ContentLength
	switch {
	case !lfs.ValidOID(oid):
		q.fail(http.StatusUnprocessableEntity, "cpm: invalid object id "+strconv.Quote(printable.Clip(oid)), nil)
		return
	case size < 0:
		q.fail(http.StatusLengthRequired, "cpm: an upload needs its Content-Length", nil)
		return
	}
	err := q.open.Store(oid, size, q.r.Body)
	switch {
	case errors.Is(err, lfs.ErrTooLarge):
		q.fail(http.StatusRequestEntityTooLarge, "cpm: "+err.Error(), nil)
	case errors.Is(err, lfs.ErrCorrupt):
		q.fail(http.StatusUnprocessableEntity, "cpm: "+err.Error(), nil)
	case errors.Is(err, lfs.ErrFenced):
		q.stats.Refused++
		q.w.Header().Set("Retry-After", "1")
		q.fail(http.StatusServiceUnavailable, "cpm: "+err.Error(), err)
	case err != nil:
		q.fail(http.StatusInternalServerError, "cpm: could not store object "+oid, err)
	default:
		q.stats.Uploaded++
		q.stats.BytesUploaded += size
		q.w.WriteHeader(http.StatusOK)
	}
}

// download sends GET /objects/OID (with Range, as net/http serves a
// file).
func (h *Handler) download(q *request, oid string) {
	if !h.decide(q, false) {
		return
	}
	f, err := q.open.Objects.Open(oid)
	if err != nil {
		q.fail(http.StatusNotFound, "cpm: object "+printable.Clip(oid)+" not found", nil)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		q.fail(http.StatusInternalServerError, "cpm: could not read object "+oid, err)
		return
	}
	q.stats.Downloaded++
	q.stats.BytesDownloaded += fi.Size()
	q.w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(q.w, q.r, "", fi.ModTime(), f)
}

// maxSmallBody bounds the JSON of verify and lock requests.
const maxSmallBody = 64 << 10

// verify answers POST /verify {"oid","size"}: whether an upload is
// stored, with its size.
func (h *Handler) verify(q *request) {
	var o batchObject
	if !q.readJSON(maxSmallBody, &o) || !h.decide(q, true) {
		return
	}
	err := q.open.Verify(o.OID, o.Size)
	switch {
	case errors.Is(err, lfs.ErrNotStored):
		q.fail(http.StatusNotFound, "cpm: "+err.Error(), nil)
	case errors.Is(err, lfs.ErrSizeMismatch):
		q.fail(http.StatusUnprocessableEntity, "cpm: "+err.Error(), nil)
	case err != nil:
		q.fail(http.StatusInternalServerError, "cpm: could not read object "+printable.Clip(o.OID), err)
	default:
		q.reply(http.StatusOK, struct{}{})
	}
}
