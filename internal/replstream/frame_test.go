package replstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func frameBytes(kind byte, n uint32, payload string) []byte {
	b := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, payload...)
}

// A frame a node sends is refused, before anything is allocated for
// it, when its kind is unknown or its length over its kind's cap, and
// a frame cut short is an error, not a hang or a panic.
func TestReadFrameRefuses(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"unknown kind", frameBytes('Z', 0, "")},
		{"a data frame over the cap", frameBytes(KindData, MaxChunk+1, "")},
		{"a length near 4 GiB", frameBytes(KindData, 0xffffffff, "")},
		{"a request over its cap", frameBytes(KindRequest, MaxJSON+1, strings.Repeat("x", MaxJSON+1))},
		{"an empty data frame", frameBytes(KindData, 0, "")},
		{"an end frame with a payload", frameBytes(KindEnd, 1, "x")},
		{"a header cut short", []byte{KindData, 0, 0}},
		{"a payload cut short", frameBytes(KindData, 10, "abc")},
	}
	for _, c := range cases {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(c.in)))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", c.name, err)
		}
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(nil))); err != io.EOF {
		t.Errorf("nothing at a frame boundary: %v, want io.EOF", err)
	}
	if err := WriteFrame(io.Discard, KindData, make([]byte, MaxChunk+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("writing a data frame over the cap: %v", err)
	}
}

func TestRequestCheck(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	ok := Request{Repo: "acme/web", Epoch: 3, Generation: 7, Fingerprint: fp}
	if rp, err := ok.Check(); err != nil || rp.String() != "acme/web" {
		t.Fatalf("a good request: %v %v", rp, err)
	}
	bad := []Request{
		{Repo: "../etc", Fingerprint: fp},
		{Repo: "acme/web/x", Fingerprint: fp},
		{Repo: "acme/web", Epoch: -1, Fingerprint: fp},
		{Repo: "acme/web", Generation: -1, Fingerprint: fp},
		{Repo: "acme/web", Fingerprint: strings.ToUpper(fp)},
		{Repo: "acme/web", Fingerprint: "abc"},
	}
	for _, r := range bad {
		if _, err := r.Check(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	var r Request
	for _, c := range []struct {
		f    Frame
		want bool
	}{
		{Frame{Kind: KindRequest, Payload: []byte(`{"repo":"a/b","epoch":1}`)}, true},
		{Frame{Kind: KindAnswer, Payload: []byte(`{"repo":"a/b"}`)}, false},
		{Frame{Kind: KindRequest, Payload: []byte(`{"repo":"a/b","extra":1}`)}, false},
		{Frame{Kind: KindRequest, Payload: []byte(`{"repo":"a/b"} {}`)}, false},
		{Frame{Kind: KindRequest, Payload: []byte(`[`)}, false},
	} {
		if err := DecodeJSON(c.f, KindRequest, &r); (err == nil) != c.want {
			t.Errorf("%q: %v", c.f.Payload, err)
		}
	}
}

// A body is what the data frames carry up to the end frame, however
// the sender cut it; anything but data inside a body ends it with an
// error, and a stalled sender is given up at the body's deadline.
func TestBody(t *testing.T) {
	var stream bytes.Buffer
	w := Writer{W: &stream}
	big := bytes.Repeat([]byte("0123456789"), MaxChunk/5) // two frames and a bit
	w.Write(big)
	w.End()
	WriteJSON(&stream, KindRequest, Request{Repo: "a/b"})
	done := make(chan struct{})
	defer close(done)
	frames := Pump(&stream, done)
	b := NewBody(context.Background(), frames)
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("body: %d bytes, %v", len(got), err)
	}
	if err := b.Drain(); err != nil {
		t.Fatalf("drain at the end: %v", err)
	}
	if f, err := Receive(context.Background(), frames); err != nil || f.Kind != KindRequest {
		t.Fatalf("the next request: %v %v", f, err)
	}

	var bad bytes.Buffer
	Writer{W: &bad}.Write([]byte("abc"))
	WriteJSON(&bad, KindRequest, Request{})
	b = NewBody(context.Background(), Pump(&bad, done))
	if _, err := io.ReadAll(b); !errors.Is(err, ErrProtocol) {
		t.Errorf("a request inside a body: %v", err)
	}
	if err := b.Drain(); err == nil {
		t.Error("drain of a broken body: no error")
	}

	pr, pw := io.Pipe()
	defer pw.Close()
	go Writer{W: pw}.Write([]byte("partial"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	b = NewBody(ctx, Pump(pr, done))
	start := time.Now()
	if _, err := io.ReadAll(b); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a stalled body: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stalled body ended after %s", d)
	}
}
