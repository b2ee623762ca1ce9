package lfs

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"cpm/internal/printable"
)

// batch answers which objects the client should send or fetch.
func (s *Session) batch(in *pktReader) (status, error) {
	var lines []string
	a, k, err := args(in)
	if err == nil && k == delim {
		lines, _, err = in.lines(batchLimit)
	}
	if err != nil {
		return malformed("batch", err), errClose
	}
	if h := a["hash-algo"]; h != "" && h != "sha256" {
		return fail(409, "unsupported hash algorithm %q; this server stores sha256", printable.Clip(h)), nil
	}
	if s.Op == Upload && !s.CanWrite {
		return s.noWrite("uploads"), nil
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || !ValidOID(f[0]) {
			return fail(400, "malformed batch line %q", printable.Clip(l)), nil
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return fail(400, "malformed size in %q", printable.Clip(l)), nil
		}
		action, err := s.Plan(s.Op, f[0], size)
		switch {
		case errors.Is(err, ErrTooLarge):
			return fail(413, "%v", err), nil
		case err != nil:
			return fail(500, "could not read object %s", f[0]), err
		case action == ActMissing:
			action = ActNone // the client reports what it lacks
		}
		out = append(out, fmt.Sprintf("%s %d %s", f[0], size, action))
	}
	return status{code: 200, args: []string{"hash-algo=sha256"}, lines: out}, nil
}

// putObject stores one uploaded object. A refusal before the data is
// read ends the session, since the data that follows cannot be skipped
// safely.
func (s *Session) putObject(in *pktReader, oid string) (status, error) {
	a, k, err := args(in)
	if err != nil || k != delim {
		return malformed("put-object", err), errClose
	}
	size, ok := sizeArg(a)
	switch {
	case s.Op != Upload:
		s.Stats.Refused++
		return fail(403, "put-object belongs to an upload session"), errClose
	case !s.CanWrite:
		return s.noWrite("uploads"), errClose
	case !ok || !ValidOID(oid):
		return fail(400, "put-object needs an object id and size=N"), errClose
	}
	if err := s.Objects.fits(oid, size); err != nil {
		return fail(413, "%v", err), errClose
	}
	body := &dataReader{p: in}
	err = s.Store(oid, size, body)
	// What is left of the data must be nothing but the flush.
	if extra, derr := io.Copy(io.Discard, io.LimitReader(body, 1)); derr != nil || extra > 0 {
		return fail(400, "object %s: more data than size=%d", oid, size), errClose
	}
	switch {
	case errors.Is(err, ErrCorrupt):
		return fail(400, "%v", err), nil
	case errors.Is(err, ErrFenced):
		s.Stats.Refused++
		return fail(503, "%v", err), errClose
	case err != nil:
		return fail(500, "could not store object %s", oid), err
	}
	s.Stats.Uploaded++
	s.Stats.BytesUploaded += size
	return status{code: 200}, nil
}

// verifyObject confirms that an upload is stored, with its size.
func (s *Session) verifyObject(in *pktReader, oid string) (status, error) {
	a, k, err := args(in)
	if err != nil || k != flush {
		return malformed("verify-object", err), errClose
	}
	// The proposal puts the size after the id; git-lfs sends size=N.
	oid, sizeWord, _ := strings.Cut(oid, " ")
	if sizeWord != "" {
		a["size"] = sizeWord
	}
	size, ok := sizeArg(a)
	if s.Op != Upload || !s.CanWrite {
		s.Stats.Refused++
		return fail(403, "verify-object belongs to an upload session with push access"), nil
	}
	if !ok {
		return fail(400, "verify-object needs size=N"), nil
	}
	err = s.Verify(oid, size)
	switch {
	case errors.Is(err, ErrNotStored):
		return fail(404, "%v", err), nil
	case errors.Is(err, ErrSizeMismatch):
		return fail(409, "%v", err), nil
	case err != nil:
		return fail(500, "could not read object %s", printable.Clip(oid)), err
	}
	return status{code: 200}, nil
}

// getObject sends one object.
func (s *Session) getObject(in *pktReader, oid string) (status, error) {
	if _, k, err := args(in); err != nil || k != flush {
		return malformed("get-object", err), errClose
	}
	if s.Op != Download {
		s.Stats.Refused++
		return fail(403, "get-object belongs to a download session"), nil
	}
	f, err := s.Objects.Open(oid)
	if err != nil {
		return fail(404, "object %s not found", printable.Clip(oid)), nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(500, "could not read object %s", oid), err
	}
	s.Stats.Downloaded++
	return status{code: 200, args: []string{"size=" + strconv.FormatInt(fi.Size(), 10)}, data: f}, nil
}
