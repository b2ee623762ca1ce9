package httpserver

import (
	"context"
	"io"
	"net/http"
	"time"
)

// bounded runs h with the request's time limits: the whole request
// within l.Request, and each read of its body and each write of the
// answer within l.Idle, so a client that stalls half way is cut off
// while a long push or clone that keeps moving is not.
func bounded(h http.Handler, l Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		end := time.Now().Add(l.Request)
		ctx, cancel := context.WithDeadline(r.Context(), end)
		defer cancel()
		rc := http.NewResponseController(w)
		// git reads a whole request before it answers, but its answer
		// may begin before the body is drained (an error): both ways at
		// once must not close the body.
		_ = rc.EnableFullDuplex()
		d := deadlines{rc: rc, idle: l.Idle, end: end}
		if r.Body != nil {
			r.Body = &idleBody{ReadCloser: r.Body, d: d}
		}
		h.ServeHTTP(&idleWriter{ResponseWriter: w, d: d}, r.WithContext(ctx))
	})
}

type deadlines struct {
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (d deadlines) next() time.Time {
	t := time.Now().Add(d.idle)
	if t.After(d.end) {
		return d.end
	}
	return t
}

type idleBody struct {
	io.ReadCloser
	d deadlines
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.d.rc.SetReadDeadline(b.d.next())
	return b.ReadCloser.Read(p)
}

type idleWriter struct {
	http.ResponseWriter
	d deadlines
}

func (w *idleWriter) Write(p []byte) (int, error) {
	_ = w.d.rc.SetWriteDeadline(w.d.next())
	return w.ResponseWriter.Write(p)
}

func (w *idleWriter) WriteHeader(code int) {
	_ = w.d.rc.SetWriteDeadline(w.d.next())
	w.ResponseWriter.WriteHeader(code)
}

// Flush sends what is buffered: git's progress and packs stream.
func (w *idleWriter) Flush() {
	_ = w.d.rc.SetWriteDeadline(w.d.next())
	_ = w.d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
