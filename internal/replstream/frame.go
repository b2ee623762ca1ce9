// Package replstream is the wire format of a long-lived replication
// session between two nodes of a cluster (cpm-peer receive-pack
// --serve): the primary sends one synchronous write after another, each
// a request frame (repository, epoch, generation, fingerprint), a body
// of data frames (the ref updates and the pack of cpm-peer receive-pack
// --pack) and an end frame; the replica answers each with one answer
// frame. Every frame is a kind byte, a 4-byte big-endian length and that
// many bytes, each length capped before anything is allocated: a node
// that lies about a length, sends an unknown kind or stops mid-frame
// ends its session with an error, never more.
package replstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame kinds.
const (
	KindRequest = 'R' // a Request, JSON
	KindData    = 'D' // bytes of the body, 1 to MaxChunk
	KindEnd     = 'E' // the body is complete; empty
	KindAnswer  = 'A' // an Answer, JSON
)

// Caps on a frame's payload: a request or an answer is a few hundred
// bytes, and a data frame is what one write of the sender carries.
const (
	MaxJSON  = 16 << 10
	MaxChunk = 64 << 10
)

// ErrProtocol is wrapped by every error about a malformed frame.
var ErrProtocol = errors.New("replication session: malformed frame")

// Frame is one frame read; Err, when set, ends the stream.
type Frame struct {
	Kind    byte
	Payload []byte
	Err     error
}

// WriteFrame writes one frame of kind with payload.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	if err := checkLen(kind, len(payload)); err != nil {
		return err
	}
	var head [5]byte
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame, its length checked against its kind's cap
// before the payload is read. io.EOF only at a frame boundary.
func ReadFrame(r *bufio.Reader) (Frame, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:1]); err != nil {
		return Frame{}, err
	}
	if _, err := io.ReadFull(r, head[1:]); err != nil {
		return Frame{}, fmt.Errorf("%w: cut short: %v", ErrProtocol, err)
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > MaxChunk {
		return Frame{}, fmt.Errorf("%w: kind %q of %d bytes", ErrProtocol, head[0], n)
	}
	if err := checkLen(head[0], int(n)); err != nil {
		return Frame{}, err
	}
	f := Frame{Kind: head[0], Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return Frame{}, fmt.Errorf("%w: cut short: %v", ErrProtocol, err)
	}
	return f, nil
}

// checkLen refuses a kind this format does not know and a payload
// longer than the kind's cap.
func checkLen(kind byte, n int) error {
	max := 0
	switch kind {
	case KindRequest, KindAnswer:
		max = MaxJSON
	case KindData:
		if n == 0 {
			return fmt.Errorf("%w: an empty data frame", ErrProtocol)
		}
		max = MaxChunk
	case KindEnd:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrProtocol, kind)
	}
	if n > max {
		return fmt.Errorf("%w: kind %q of %d bytes, at most %d", ErrProtocol, kind, n, max)
	}
	return nil
}
