package lfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The protocol speaks git's pkt-lines: four hex digits of length (the
// header included), then the payload; 0000 is a flush and 0001 a
// delimiter.
const (
	maxPacket  = 65520 // git's limit, header included
	maxPayload = maxPacket - 4
)

// kind tells a packet from the two special ones.
type kind int

const (
	data kind = iota
	flush
	delim
)

var errProtocol = errors.New("malformed pkt-line")

type pktReader struct {
	r   *bufio.Reader
	buf [maxPacket]byte
}

func newPktReader(r io.Reader) *pktReader { return &pktReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next reads one packet; the payload is valid until the next call.
func (p *pktReader) next() (kind, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	switch {
	case err != nil:
		return 0, nil, errProtocol
	case n == 0:
		return flush, nil, nil
	case n == 1:
		return delim, nil, nil
	case n < 4 || n > maxPacket:
		return 0, nil, errProtocol
	}
	b := p.buf[:n-4]
	if _, err := io.ReadFull(p.r, b); err != nil {
		return 0, nil, fmt.Errorf("read pkt-line: %w", err)
	}
	return data, b, nil
}

// text reads a text packet, without its newline.
func (p *pktReader) text() (kind, string, error) {
	k, b, err := p.next()
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return k, string(b), err
}

// limit bounds one request's text packets, in number and in bytes, so
// that what a session holds for a request is small whatever the client
// sends: a packet counts before it is kept.
type limit struct{ lines, bytes int }

// errTooLarge is a request over its limit.
var errTooLarge = errors.New("request too large")

// lines reads text packets up to a flush or delimiter, which it returns;
// past lim it stops reading and returns errTooLarge.
func (p *pktReader) lines(lim limit) ([]string, kind, error) {
	var out []string
	held := 0
	for {
		k, b, err := p.next()
		if err != nil || k != data {
			return out, k, err
		}
		held += len(b)
		if len(out) == lim.lines || held > lim.bytes {
			return nil, 0, fmt.Errorf("%w: over %d lines or %d bytes", errTooLarge, lim.lines, lim.bytes)
		}
		out = append(out, string(bytes.TrimSuffix(b, []byte("\n"))))
	}
}

// dataReader reads the payloads of data packets up to a flush.
type dataReader struct {
	p    *pktReader
	rest []byte
	done bool
}

func (d *dataReader) Read(b []byte) (int, error) {
	for len(d.rest) == 0 {
		if d.done {
			return 0, io.EOF
		}
		k, payload, err := d.p.next()
		switch {
		case err != nil:
			return 0, err
		case k == flush:
			d.done = true
			return 0, io.EOF
		case k == delim:
			return 0, errProtocol
		}
		d.rest = payload
	}
	n := copy(b, d.rest)
	d.rest = d.rest[n:]
	return n, nil
}

type pktWriter struct{ w *bufio.Writer }

func newPktWriter(w io.Writer) *pktWriter { return &pktWriter{w: bufio.NewWriterSize(w, 64<<10)} }

func (p *pktWriter) packet(b []byte) error {
	if _, err := fmt.Fprintf(p.w, "%04x", len(b)+4); err != nil {
		return err
	}
	_, err := p.w.Write(b)
	return err
}

func (p *pktWriter) text(s string) error { return p.packet([]byte(s + "\n")) }
func (p *pktWriter) delim() error {
	_, err := p.w.WriteString("0001")
	return err
}

// flush ends a message and sends what is buffered.
func (p *pktWriter) flush() error {
	if _, err := p.w.WriteString("0000"); err != nil {
		return err
	}
	return p.w.Flush()
}

// copyData sends r as data packets.
func (p *pktWriter) copyData(r io.Reader) (int64, error) {
	buf := make([]byte, maxPayload)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := p.packet(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
