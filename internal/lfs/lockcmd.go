package lfs

import (
	"context"
	"errors"
	"strconv"

	"cpm/internal/printable"
)

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
	l, err := s.Lock(ctx, path)
	switch {
	case errors.Is(err, ErrInvalid):
		return fail(400, "lock needs path=PATH: %v", err), nil
	case errors.Is(err, ErrLockExists):
		st := fail(409, "%s is locked by %s", printable.Clip(path), l.Owner)
		st.args = lockArgs(l)
		return st, nil
	case err != nil:
		return fail(500, "could not lock %s", printable.Clip(path)), err
	}
	return status{code: 201, args: lockArgs(l)}, nil
}

// unlock removes a lock: its owner's, or anyone's for a repository admin
// (the ssh protocol has no force flag: an admin's unlock is forced).
func (s *Session) unlock(ctx context.Context, id string) (status, error) {
	l, err := s.Unlock(ctx, id, true)
	switch {
	case errors.Is(err, ErrNoLock):
		return fail(404, "lock %s not found", printable.Clip(id)), nil
	case errors.Is(err, ErrNotYours):
		return fail(403, "%v", err), nil
	case err != nil:
		return fail(500, "could not remove lock %s", printable.Clip(id)), err
	}
	return status{code: 200, args: lockArgs(l)}, nil
}

func (s *Session) listLocks(ctx context.Context, a map[string]string) (status, error) {
	limit, _ := strconv.Atoi(a["limit"])
	locks, next, err := s.ListLocks(ctx, a["path"], a["id"], a["cursor"], limit)
	if err != nil {
		return fail(500, "could not list locks"), err
	}
	st := status{code: 200}
	if next != "" {
		st.args = []string{"next-cursor=" + next}
	}
	for _, l := range locks {
		who := "theirs"
		if s.Ours(l) {
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
