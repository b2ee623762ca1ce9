package replstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
)

// Pump reads frames from in, one goroutine, until a read fails or done
// is closed; the last frame it sends carries the error (io.EOF at a
// clean end). Reading in a goroutine of its own is what lets every wait
// for a frame have a deadline: a stalled peer leaves only this goroutine
// blocked until its session is closed.
func Pump(in io.Reader, done <-chan struct{}) <-chan Frame {
	frames := make(chan Frame)
	go func() {
		defer close(frames)
		br := bufio.NewReaderSize(in, MaxChunk+5)
		for {
			f, err := ReadFrame(br)
			if err != nil {
				f = Frame{Err: err}
			}
			select {
			case frames <- f:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return frames
}

// Receive waits for the next frame until ctx ends.
func Receive(ctx context.Context, frames <-chan Frame) (Frame, error) {
	select {
	case f, ok := <-frames:
		if !ok {
			return Frame{}, io.ErrUnexpectedEOF
		}
		return f, f.Err
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("replication session: waiting for the primary: %w", context.Cause(ctx))
	}
}

// Body is a request's body as the replica reads it: the data frames up
// to the end frame, each waited for until ctx ends. It is safe for
// use by several goroutines (a git process's input copier may still
// hold it when a write gives up).
type Body struct {
	ctx    context.Context
	frames <-chan Frame

	mu  sync.Mutex
	buf []byte
	end bool
	err error
}

// NewBody reads the body that follows a request from frames.
func NewBody(ctx context.Context, frames <-chan Frame) *Body {
	return &Body{ctx: ctx, frames: frames}
}

// Read reads the body; io.EOF after its end frame.
func (b *Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 {
		if err := b.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// next takes the next frame into buf, or says why there is none.
func (b *Body) next() error {
	switch {
	case b.end:
		return io.EOF
	case b.err != nil:
		return b.err
	}
	f, err := Receive(b.ctx, b.frames)
	switch {
	case err != nil:
		b.err = err
	case f.Kind == KindData:
		b.buf = f.Payload
		return nil
	case f.Kind == KindEnd:
		b.end = true
		return io.EOF
	default:
		b.err = fmt.Errorf("%w: kind %q inside a body", ErrProtocol, f.Kind)
	}
	return b.err
}

// Drain reads what is left of the body and drops it. It returns nil
// when the stream is at the next request (the end frame read), so that
// the session may go on.
func (b *Body) Drain() error {
	_, err := io.Copy(io.Discard, b)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end {
		return nil
	}
	return err
}

// Writer is a body as the primary writes it: every Write becomes data
// frames of at most MaxChunk bytes; End ends it.
type Writer struct{ W io.Writer }

func (w Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), MaxChunk)
		if err := WriteFrame(w.W, KindData, p[:c]); err != nil {
			return n, err
		}
		n, p = n+c, p[c:]
	}
	return n, nil
}

// End writes the end frame.
func (w Writer) End() error { return WriteFrame(w.W, KindEnd, nil) }
