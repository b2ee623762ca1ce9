package githttp

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// maxNegotiation caps the (decompressed) body of an upload-pack request:
// wants, haves and options, which a stateless client resends each round.
// A fetch of a very large history needs a few megabytes; the cap keeps a
// gzip bomb from feeding git gigabytes. receive-pack's body is the push
// itself and has no cap of its own.
const maxNegotiation = 32 << 20

// errTooLarge ends a body past its cap.
var errTooLarge = errors.New("request body too large")

// requestBody is the request's body decoded (git gzips large
// negotiations), capped at limit bytes. Without a cap (limit 0: a push,
// whose pack is as large as it is) no encoding is taken: git never
// gzips a push's body, and a decoded one has no size a client pays for
// (a gzip bomb would fill the quarantine). An encoding other than gzip
// is refused.
func requestBody(r *http.Request, limit int64) (*cappedReader, error) {
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); {
	case enc == "" || enc == "identity":
	case limit <= 0:
		return nil, errEncoding
	case enc == "gzip" || enc == "x-gzip":
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		body = z
	default:
		return nil, errEncoding
	}
	c := &cappedReader{r: body, left: limit, capped: limit > 0}
	if c.capped {
		c.until = time.Now().Add(negotiationTime)
	}
	return c, nil
}

// negotiationTime bounds reading a whole upload-pack request: a few
// megabytes at most, which a client that keeps each read just inside
// idle_timeout would otherwise trickle for hours, holding a git process.
const negotiationTime = 60 * time.Second

// errTooSlow ends a capped body read for longer than negotiationTime.
var errTooSlow = errors.New("request body too slow")

var errEncoding = errors.New("unsupported Content-Encoding")

// cappedReader reads r up to a cap and fails past it, remembering that
// it did (the answer is then 413, if git has not begun one).
type cappedReader struct {
	r      io.Reader
	left   int64
	capped bool
	over   atomic.Bool
	until  time.Time // reading past it fails (zero: no end)
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if !c.capped {
		return c.r.Read(p)
	}
	if !c.until.IsZero() && time.Now().After(c.until) {
		return 0, errTooSlow
	}
	if c.left <= 0 {
		// One more byte says whether the body really goes on.
		var one [1]byte
		for {
			n, err := c.r.Read(one[:])
			if n > 0 {
				c.over.Store(true)
				return 0, errTooLarge
			}
			if err != nil {
				return 0, err // io.EOF at the end; a broken body stays broken
			}
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
