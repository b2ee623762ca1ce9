package lfshttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cpm/internal/access"
	"cpm/internal/gateway"
)

// maxRelayedHead bounds the request line and headers of a relayed
// request, and the status line and headers of the primary's answer.
const maxRelayedHead = 64 << 10

// relayedHeaders are what a relayed request keeps of the client's: what
// the API reads (the credential only to hand it back in actions; the
// primary identifies the relay header's token itself). Forwarding
// headers are dropped: the relay header names the client.
var relayedHeaders = []string{"Accept", "Content-Type", "Authorization", "Range", "If-Range",
	"If-None-Match", "If-Modified-Since", "User-Agent"}

// hopHeaders are the primary's answer's own framing, never copied.
var hopHeaders = map[string]bool{"Connection": true, "Transfer-Encoding": true, "Keep-Alive": true}

// relay serves q on the repository's primary (gateway.RelayLFS over the
// nodes' ssh): the request as the client sent it (the body readJSON kept
// or the unread one), and its answer copied back as it comes.
func (h *Handler) relay(q *request, req gateway.LFSRequest, to *gateway.LFSElsewhere) {
	if h.baseURL(q) == "" {
		q.fail(http.StatusInternalServerError, noBaseURL, nil)
		return
	}
	fwd := relayedRequest(q)
	inR, inW := io.Pipe()
	go func() { inW.CloseWithError(fwd.Write(inW)) }()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := h.Gateway.RelayLFS(q.context(), req, to, h.baseURL(q), inR, outW)
		inR.CloseWithError(errors.New("relay ended"))
		outW.Close()
		done <- err
	}()
	defer func() { outR.Close(); <-done }()
	lim := &io.LimitedReader{R: outR, N: maxRelayedHead}
	res, err := http.ReadResponse(bufio.NewReader(lim), fwd)
	if err != nil {
		outR.Close()
		rerr := <-done
		done <- rerr // for the deferred wait
		switch {
		case rerr == nil:
			q.fail(http.StatusBadGateway, "cpm: the primary node's answer was malformed", fmt.Errorf("relayed answer: %w", err))
		case access.OutcomeOf(rerr) == access.Failed:
			q.fail(http.StatusBadGateway, gateway.ClientLine(rerr), rerr)
		default:
			q.refuse(rerr)
		}
		return
	}
	lim.N = math.MaxInt64
	for k, v := range res.Header {
		if !hopHeaders[k] {
			q.w.Header()[k] = v
		}
	}
	if res.ContentLength >= 0 {
		q.w.Header().Set("Content-Length", fmt.Sprint(res.ContentLength))
	}
	q.w.WriteHeader(res.StatusCode)
	io.Copy(q.w, res.Body)
}

// relayedRequest is q as the primary reads it: the method, the path
// below …/info/lfs, the headers the API reads, and the body.
func relayedRequest(q *request) *http.Request {
	fwd := &http.Request{Method: q.r.Method, URL: &url.URL{Scheme: "http", Host: "relay", Path: q.rest},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: "relay",
		ContentLength: q.r.ContentLength}
	for _, k := range relayedHeaders {
		if v := q.r.Header.Values(k); len(v) > 0 {
			fwd.Header[k] = v
		}
	}
	switch {
	case q.raw != nil:
		fwd.Body, fwd.ContentLength = io.NopCloser(bytes.NewReader(q.raw)), int64(len(q.raw))
	case q.r.ContentLength != 0 && q.r.Body != nil:
		fwd.Body = q.r.Body
	}
	if fwd.Body == nil {
		fwd.ContentLength = 0
	}
	return fwd
}

// ServeRelayed answers an LFS API request that another node relayed here
// (gateway.RelayedLFS): req as the gateway identified it afresh, the
// request read from in (its head and body bounded), the answer written
// to out as an HTTP response. An error means nothing was answered.
func (h *Handler) ServeRelayed(ctx context.Context, req gateway.LFSRequest, baseURL string, in io.Reader, out io.Writer) error {
	lim := &io.LimitedReader{R: in, N: maxRelayedHead}
	r, err := readRelayedHead(bufio.NewReader(lim), relayedHeadTimeout)
	if err != nil {
		return err
	}
	lim.N = h.maxRelayedBody()
	r = r.WithContext(ctx)
	r.RemoteAddr = req.RemoteAddr
	w := &relayedAnswer{out: out, header: http.Header{}}
	h.serve(&request{w: w, r: r, id: req.Identity, token: req.Token, repo: req.Repo, rest: r.URL.Path,
		remote: req.RemoteAddr, relayed: req.Relayed, hops: req.Hops, base: strings.TrimRight(baseURL, "/")})
	w.WriteHeader(http.StatusOK) // an answer with no body nor status yet
	return nil
}

// relayedHeadTimeout bounds the wait for a relayed request's head: the
// relaying node sends it at once, after the relay header.
const relayedHeadTimeout = 10 * time.Second

// readRelayedHead reads a relayed request's head within timeout. On a
// timeout the reading goroutine stays blocked until the relay session
// ends, which closes its input (as for the relay header).
func readRelayedHead(in *bufio.Reader, timeout time.Duration) (*http.Request, error) {
	type read struct {
		r   *http.Request
		err error
	}
	done := make(chan read, 1)
	go func() {
		r, err := http.ReadRequest(in)
		done <- read{r, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case got := <-done:
		if got.err != nil {
			return nil, fmt.Errorf("read relayed request: %w", got.err)
		}
		return got.r, nil
	case <-t.C:
		return nil, fmt.Errorf("read relayed request: no head within %s", timeout)
	}
}

// maxRelayedBody bounds a relayed request's body: an object of the
// largest size allowed, or a batch.
func (h *Handler) maxRelayedBody() int64 {
	if n := h.Gateway.LFSMaxObjectSize; n > 0 {
		return n + maxBatchBytes
	}
	return math.MaxInt64
}

// relayedAnswer writes the answer to a relayed request as an HTTP/1.1
// response whose body ends with the stream (Connection: close), unless
// the handler gave its length.
type relayedAnswer struct {
	out    io.Writer
	header http.Header
	wrote  bool
}

func (a *relayedAnswer) Header() http.Header { return a.header }

func (a *relayedAnswer) WriteHeader(code int) {
	if a.wrote {
		return
	}
	a.wrote = true
	for k := range hopHeaders {
		a.header.Del(k)
	}
	a.header.Set("Connection", "close")
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", code, http.StatusText(code))
	a.header.Write(&b)
	b.WriteString("\r\n")
	a.out.Write(b.Bytes())
}

func (a *relayedAnswer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.out.Write(p)
}
