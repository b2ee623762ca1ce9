package lfs

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
		return fail(409, "unsupported hash algorithm %q; this server stores sha256", clip(h)), nil
	}
	if s.Op == Upload && !s.CanWrite {
		return s.noWrite("uploads"), nil
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || !ValidOID(f[0]) {
			return fail(400, "malformed batch line %q", clip(l)), nil
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return fail(400, "malformed size in %q", clip(l)), nil
		}
		action, err := s.action(f[0], size)
		if err != nil {
			return fail(413, "%v", err), nil
		}
		out = append(out, fmt.Sprintf("%s %d %s", f[0], size, action))
	}
	return status{code: 200, args: []string{"hash-algo=sha256"}, lines: out}, nil
}

// action is what the client should do with one object of a batch.
func (s *Session) action(oid string, size int64) (string, error) {
	have, ok, err := s.Objects.Size(oid)
	if err != nil {
		return "", err
	}
	if s.Op == Download {
		if ok {
			return "download", nil
		}
		return "noop", nil
	}
	if s.Objects.MaxSize > 0 && size > s.Objects.MaxSize {
		return "", fmt.Errorf("object %s is %d bytes, over this server's limit of %d (lfs_max_object_size)", oid, size, s.Objects.MaxSize)
	}
	if ok && have == size {
		return "noop", nil
	}
	return "upload", nil
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
	case s.Objects.MaxSize > 0 && size > s.Objects.MaxSize:
		return fail(413, "object %s is %d bytes, over this server's limit of %d (lfs_max_object_size)", oid, size, s.Objects.MaxSize), errClose
	}
	body := &dataReader{p: in}
	err = s.Objects.Put(oid, size, body)
	// What is left of the data must be nothing but the flush.
	if extra, derr := io.Copy(io.Discard, io.LimitReader(body, 1)); derr != nil || extra > 0 {
		return fail(400, "object %s: more data than size=%d", oid, size), errClose
	}
	switch {
	case errors.Is(err, ErrCorrupt):
		return fail(400, "%v", err), nil
	case err != nil:
		return fail(500, "could not store object %s", oid), err
	}
	if s.Fence != nil {
		if err := s.Fence(); err != nil {
			s.Stats.Refused++
			return fail(503, "%v", err), errClose
		}
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
	have, stored, err := s.Objects.Size(oid)
	switch {
	case err != nil:
		return fail(500, "could not read object %s", clip(oid)), err
	case !ok:
		return fail(400, "verify-object needs size=N"), nil
	case !stored:
		return fail(404, "object %s not found", clip(oid)), nil
	case have != size:
		return fail(409, "object %s is %d bytes here, not %d", oid, have, size), nil
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
		return fail(404, "object %s not found", clip(oid)), nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(500, "could not read object %s", oid), err
	}
	s.Stats.Downloaded++
	return status{code: 200, args: []string{"size=" + strconv.FormatInt(fi.Size(), 10)}, data: f}, nil
}
