// Package capbuf is a buffer that holds at most a set number of bytes:
// what a command prints (a remote node's answer, git's stderr) must not
// make this process hold more than that, whoever wrote it.
package capbuf

import (
	"bytes"
	"errors"
	"sync"
)

// ErrTooLong fails a Write past the cap of a Buffer that is not Quiet.
var ErrTooLong = errors.New("answer too long")

// Buffer takes up to Max bytes. Past it, a Write fails (the answer is
// cut and must not be read) or, Quiet, the start is kept and the rest
// dropped (stderr, read for diagnosis only). Safe for concurrent use: a
// command's streams are copied from goroutines of their own.
type Buffer struct {
	Max   int
	Quiet bool

	mu   sync.Mutex
	b    bytes.Buffer
	over bool
}

func (c *Buffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.Max - c.b.Len(); len(p) > room {
		c.over = true
		if !c.Quiet {
			return 0, ErrTooLong
		}
		c.b.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.b.Write(p)
}

// Bytes is what was kept.
func (c *Buffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Bytes()
}

func (c *Buffer) String() string { return string(c.Bytes()) }

// Over says whether more than Max bytes were written.
func (c *Buffer) Over() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.over
}
