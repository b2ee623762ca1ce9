// Package lfs serves Git LFS over ssh with the pure ssh transfer protocol
// (git-lfs-transfer), which git-lfs 3 clients use on their own for ssh
// remotes: batch, object upload and download, and file locks, for one
// repository whose access the gateway has already decided. Objects are
// stored by content, checked before they are kept, never overwritten.
package lfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"cpm/internal/printable"
)

// Operation is what a session was opened for.
type Operation string

const (
	Upload   Operation = "upload"
	Download Operation = "download"
)

// Session is one git-lfs-transfer connection to one repository.
type Session struct {
	Repo
	Op Operation

	// Filled in as the session runs, for its log event.
	Stats Stats
}

// Stats counts what a session moved, and what it refused.
type Stats struct {
	Uploaded, Downloaded           int
	BytesUploaded, BytesDownloaded int64
	Refused                        int
}

// noWrite is the refusal of a write (an upload, a lock).
func (s *Session) noWrite(what string) status {
	s.Stats.Refused++
	if s.NoWrite != "" {
		return fail(403, "%s: %s", what, s.NoWrite)
	}
	return fail(403, "%s need push access", what)
}

// status is one response: a code, arguments, then lines or data.
type status struct {
	code  int
	args  []string
	lines []string
	data  io.Reader
}

func fail(code int, format string, a ...any) status {
	return status{code: code, lines: []string{fmt.Sprintf(format, a...)}}
}

// errClose ends a session after its response: the stream cannot be
// trusted to be in step any more.
var errClose = errors.New("closing the session")

// Refused is how a session ends on a refusal: a request that could not be
// read, or one refused before data that cannot be skipped. The client has
// had the status, except after a malformed pkt-line, where the stream is
// out of step; either way it is a decision, not a fault (access.OutcomeOf).
type Refused struct {
	Code   int
	Reason string
}

func (e *Refused) Error() string { return e.Reason }

// Refusal marks it as a decision for access.OutcomeOf.
func (e *Refused) Refusal() bool { return true }

// refused is the end of a session on st.
func refused(st status) *Refused {
	r := &Refused{Code: st.code, Reason: fmt.Sprintf("status %d", st.code)}
	if len(st.lines) > 0 {
		r.Reason = st.lines[0]
	}
	return r
}

// Every request is read within a limit. The arguments of any verb are a
// few short lines (a lock's path is at most 4 KiB); a batch lists up to
// 10,000 objects (git-lfs sends 100), each an id and a size, well under
// 128 bytes a line.
var (
	argLimit   = limit{lines: 100, bytes: 16 << 10}
	batchLimit = limit{lines: 10000, bytes: 10000 * 128}
)

// malformed answers a request that could not be read: too large, or not
// in the protocol's form.
func malformed(what string, err error) status {
	switch {
	case err == nil: // read, but not ended as the verb's form asks
		return fail(400, "malformed %s", what)
	case errors.Is(err, errTooLarge):
		return fail(413, "%s: %v", what, err)
	}
	return fail(400, "malformed %s: %v", what, err)
}

// Serve runs the session on r and w until the client quits or goes. A
// session the server ends on a refusal returns a *Refused.
func (s *Session) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	in, out := newPktReader(r), newPktWriter(w)
	caps := []string{"version=1"}
	if s.Locks != nil {
		caps = append(caps, "locking")
	}
	for _, c := range caps {
		if err := out.text(c); err != nil {
			return err
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	for {
		k, line, err := in.text()
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil // the client is gone
		case errors.Is(err, errProtocol):
			return &Refused{Code: 400, Reason: "malformed pkt-line"}
		case err != nil:
			return err
		}
		if k != data {
			continue // a stray flush or delimiter: nothing to answer
		}
		verb, arg, _ := strings.Cut(line, " ")
		st, err := s.command(ctx, in, verb, arg)
		if werr := s.respond(out, st); werr != nil {
			return werr
		}
		if errors.Is(err, errClose) {
			return refused(st)
		}
		if verb == "quit" || err != nil {
			return err
		}
	}
}

func (s *Session) respond(out *pktWriter, st status) error {
	if err := out.text("status " + strconv.Itoa(st.code)); err != nil {
		return err
	}
	for _, a := range st.args {
		if err := out.text(a); err != nil {
			return err
		}
	}
	switch {
	case st.data != nil:
		if err := out.delim(); err != nil {
			return err
		}
		if c, ok := st.data.(io.Closer); ok {
			defer c.Close()
		}
		n, err := out.copyData(st.data)
		s.Stats.BytesDownloaded += n
		if err != nil {
			return err
		}
	case len(st.lines) > 0:
		if err := out.delim(); err != nil {
			return err
		}
		for _, l := range st.lines {
			if err := out.text(l); err != nil {
				return err
			}
		}
	}
	return out.flush()
}

// command reads the rest of one request and answers it. Every verb reads
// its whole request before it decides, so that a refusal leaves the
// stream in step.
func (s *Session) command(ctx context.Context, in *pktReader, verb, arg string) (status, error) {
	switch verb {
	case "version":
		if _, _, err := in.lines(argLimit); err != nil {
			return malformed("request", err), errClose
		}
		if arg != "1" {
			return fail(400, "unknown version %q; this server speaks version 1", printable.Clip(arg)), nil
		}
		return status{code: 200}, nil
	case "quit":
		in.lines(argLimit)
		return status{code: 200}, nil
	case "batch":
		return s.batch(in)
	case "put-object":
		return s.putObject(in, arg)
	case "verify-object":
		return s.verifyObject(in, arg)
	case "get-object":
		return s.getObject(in, arg)
	case "lock", "list-lock", "list-locks", "unlock":
		return s.lockCommand(ctx, in, verb, arg)
	}
	// Unknown verbs are refused, whatever follows them.
	if _, _, err := in.lines(argLimit); err != nil {
		return malformed("request", err), errClose
	}
	return fail(400, "unknown command %q", printable.Clip(verb)), nil
}

// args reads key=value packets up to a flush or delimiter (returned).
func args(in *pktReader) (map[string]string, kind, error) {
	lines, k, err := in.lines(argLimit)
	if err != nil {
		return nil, k, err
	}
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		key, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, k, fmt.Errorf("argument %q: want key=value", printable.Clip(l))
		}
		m[key] = v
	}
	return m, k, nil
}

// sizeArg is the size=N argument.
func sizeArg(a map[string]string) (int64, bool) {
	n, err := strconv.ParseInt(a["size"], 10, 64)
	return n, err == nil && n >= 0
}

// timestamp is how locks show when they were taken.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
