package lfshttp

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"cpm/internal/lfs"
	"cpm/internal/printable"
)

// lockJSON is a lock as the locks API shows it.
type lockJSON struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	LockedAt string    `json:"locked_at"`
	Owner    ownerJSON `json:"owner"`
}

type ownerJSON struct {
	Name string `json:"name"`
}

func toJSON(l lfs.Lock) lockJSON {
	return lockJSON{ID: l.ID, Path: l.Path, LockedAt: l.LockedAt.UTC().Format(time.RFC3339), Owner: ownerJSON{Name: l.Owner}}
}

// lockAnswer is the answer of a lock's creation or removal.
type lockAnswer struct {
	Lock    lockJSON `json:"lock"`
	Message string   `json:"message,omitempty"`
}

// locksRequest is the body of POST /locks, /locks/verify and
// /locks/ID/unlock (each uses its own fields; ref is not used: locks are
// per repository, as over ssh).
type locksRequest struct {
	Path   string `json:"path"`
	Cursor string `json:"cursor"`
	Limit  int    `json:"limit"`
	Force  bool   `json:"force"`
}

// locksOf opens the repository's locks for a read or a write; false when
// the client has been answered (a replica's locks are its origin's).
func (h *Handler) locksOf(q *request, write bool) bool {
	if !h.decide(q, write) {
		return false
	}
	if q.open.Locks == nil {
		q.fail(http.StatusNotImplemented, "cpm: "+q.open.Name.String()+" is a replica; its locks are kept by its origin", nil)
		return false
	}
	return true
}

// createLock answers POST /locks {"path"}.
func (h *Handler) createLock(q *request) {
	var b locksRequest
	if !q.readJSON(maxSmallBody, &b) || !h.locksOf(q, true) {
		return
	}
	l, err := q.open.Lock(q.context(), b.Path)
	switch {
	case errors.Is(err, lfs.ErrInvalid):
		q.fail(http.StatusUnprocessableEntity, "cpm: "+err.Error(), nil)
	case errors.Is(err, lfs.ErrLockExists):
		q.err = refusal("already locked")
		q.reply(http.StatusConflict, lockAnswer{Lock: toJSON(l), Message: "cpm: " + printable.Clip(l.Path) + " is locked by " + l.Owner})
	case err != nil:
		q.fail(http.StatusInternalServerError, "cpm: could not lock "+printable.Clip(b.Path), err)
	default:
		q.reply(http.StatusCreated, lockAnswer{Lock: toJSON(l)})
	}
}

// locksPage is a page of locks, with the cursor of the next.
type locksPage struct {
	Locks      []lockJSON `json:"locks"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// listLocks answers GET /locks?path=&id=&cursor=&limit=.
func (h *Handler) listLocks(q *request) {
	if !h.locksOf(q, false) {
		return
	}
	v := q.r.URL.Query()
	limit, _ := strconv.Atoi(v.Get("limit"))
	locks, next, err := q.open.ListLocks(q.context(), v.Get("path"), v.Get("id"), v.Get("cursor"), limit)
	if err != nil {
		q.fail(http.StatusInternalServerError, "cpm: could not list locks", err)
		return
	}
	page := locksPage{Locks: make([]lockJSON, 0, len(locks)), NextCursor: next}
	for _, l := range locks {
		page.Locks = append(page.Locks, toJSON(l))
	}
	q.reply(http.StatusOK, page)
}

// verifyPage is the answer of /locks/verify: the locks split by owner.
type verifyPage struct {
	Ours       []lockJSON `json:"ours"`
	Theirs     []lockJSON `json:"theirs"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// verifyLocks answers POST /locks/verify, which git-lfs asks before a
// push: it needs push access, as the locks guard pushes.
func (h *Handler) verifyLocks(q *request) {
	var b locksRequest
	if !q.readJSON(maxSmallBody, &b) || !h.locksOf(q, true) {
		return
	}
	locks, next, err := q.open.ListLocks(q.context(), "", "", b.Cursor, b.Limit)
	if err != nil {
		q.fail(http.StatusInternalServerError, "cpm: could not list locks", err)
		return
	}
	page := verifyPage{Ours: []lockJSON{}, Theirs: []lockJSON{}, NextCursor: next}
	for _, l := range locks {
		if q.open.Ours(l) {
			page.Ours = append(page.Ours, toJSON(l))
		} else {
			page.Theirs = append(page.Theirs, toJSON(l))
		}
	}
	q.reply(http.StatusOK, page)
}

// unlock answers POST /locks/ID/unlock {"force"}: the owner removes their
// lock; a repository admin removes another's with force.
func (h *Handler) unlock(q *request, id string) {
	var b locksRequest
	if !q.readJSON(maxSmallBody, &b) || !h.locksOf(q, true) {
		return
	}
	l, err := q.open.Unlock(q.context(), id, b.Force)
	switch {
	case errors.Is(err, lfs.ErrNoLock):
		q.fail(http.StatusNotFound, "cpm: lock "+printable.Clip(id)+" not found", nil)
	case errors.Is(err, lfs.ErrNotYours):
		q.fail(http.StatusForbidden, "cpm: "+err.Error(), nil)
	case err != nil:
		q.fail(http.StatusInternalServerError, "cpm: could not remove lock "+printable.Clip(id), err)
	default:
		q.reply(http.StatusOK, lockAnswer{Lock: toJSON(l)})
	}
}
