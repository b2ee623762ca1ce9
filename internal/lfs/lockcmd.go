package lfs

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// maxLockPath bounds a locked path.
const maxLockPath = 4096

// lockCommand runs lock, list-lock(s) and unlock. Every one of them
// needs push access, as the locks guard pushes.
func (s *Session) lockCommand(ctx context.Context, in *pktReader, verb, arg string) (status, error) {
	a, k, err := args(in)
	if err == nil && k == delim {
		_, _, err = in.lines(argLimit) // the proposal's empty section before the flush
	}
	if err != nil {
		return malformed(verb+" request", err), errClose
	}
	if !s.CanWrite || s.Locks == nil {
		return s.noWrite("locks"), nil
	}
	switch verb {
	case "lock":
		return s.lock(ctx, a["path"])
	case "unlock":
		return s.unlock(ctx, arg)
	}
	return s.listLocks(ctx, a)
}

func (s *Session) lock(ctx context.Context, path string) (status, error) {
	if path == "" || len(path) > maxLockPath || strings.ContainsAny(path, "\x00\n\r") {
		return fail(400, "lock needs path=PATH"), nil
	}
	l, err := s.Locks.Create(ctx, path, s.User)
	switch {
	case errors.Is(err, ErrLockExists):
		st := fail(409, "%s is locked by %s", clip(path), l.Owner)
		st.args = lockArgs(l)
		return st, nil
	case err != nil:
		return fail(500, "could not lock %s", clip(path)), err
	}
	return status{code: 201, args: lockArgs(l)}, nil
}

// unlock removes a lock: its owner's, or anyone's for a repository admin.
func (s *Session) unlock(ctx context.Context, id string) (status, error) {
	l, err := s.Locks.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNoLock):
		return fail(404, "lock %s not found", clip(id)), nil
	case err != nil:
		return fail(500, "could not read lock %s", clip(id)), err
	case l.Owner != s.User && !s.Admin:
		return fail(403, "lock %s on %s is %s's; only they or a repository admin may remove it", l.ID, l.Path, l.Owner), nil
	}
	if err := s.Locks.Delete(ctx, l); errors.Is(err, ErrNoLock) {
		return fail(404, "lock %s not found", clip(id)), nil
	} else if err != nil {
		return fail(500, "could not remove lock %s", l.ID), err
	}
	return status{code: 200, args: lockArgs(l)}, nil
}

func (s *Session) listLocks(ctx context.Context, a map[string]string) (status, error) {
	limit, _ := strconv.Atoi(a["limit"])
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	locks, next, err := s.Locks.List(ctx, a["path"], a["id"], a["cursor"], limit)
	if err != nil {
		return fail(500, "could not list locks"), err
	}
	st := status{code: 200}
	if next != "" {
		st.args = []string{"next-cursor=" + next}
	}
	for _, l := range locks {
		who := "theirs"
		if l.Owner == s.User {
			who = "ours"
		}
		st.lines = append(st.lines, "lock "+l.ID, "path "+l.ID+" "+l.Path, "locked-at "+l.ID+" "+timestamp(l.LockedAt),
			"ownername "+l.ID+" "+l.Owner, "owner "+l.ID+" "+who)
	}
	return st, nil
}

// lockArgs describe a lock in a lock or unlock response.
func lockArgs(l Lock) []string {
	return []string{"id=" + l.ID, "path=" + l.Path, "locked-at=" + timestamp(l.LockedAt), "ownername=" + l.Owner}
}
