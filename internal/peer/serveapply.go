package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/replstream"
)

// SessionIdle is how long a replication session waits for the
// primary's next request before it ends (the primary retires its own
// sessions sooner).
const SessionIdle = 5 * time.Minute

// Applied is one write a replication session served, for its log.
type Applied struct {
	Repo              string
	Epoch, Generation int64
	Duration          time.Duration
	Err               error
}

// ServeApply serves a long-lived replication session from origin, a node
// of this cluster (cpm-peer receive-pack --serve): one ApplyPack after
// another, each a request frame, its body and this node's answer frame
// (replstream). Each write passes every check of a one-shot ApplyPack
// afresh (nothing is remembered across requests: the sender's role,
// epoch and lease are read under the repository's row each time), and
// each is bounded by the write timeout. A malformed frame, a body cut
// short or a request that overruns its bound ends the session with an
// error; a write that fails its checks is answered and the session goes
// on. When between ends (the server shuts down), the session ends
// before its next request; a write under way runs to its end under ctx.
// report is called once per write.
func (r *Receiver) ServeApply(ctx, between context.Context, origin Origin, in io.Reader, out io.Writer, report func(Applied)) error {
	if !origin.Node {
		return errors.New("cpm-peer receive-pack is for nodes of this cluster")
	}
	// This node's id, read once for the session (a write checks it
	// against the replica's job inside its transaction each time); read
	// per write while it cannot be read, so each write says why.
	self, err := r.selfID(ctx)
	if err != nil {
		self = 0
	}
	done := make(chan struct{})
	defer close(done)
	frames := replstream.Pump(in, done)
	bw := bufio.NewWriter(out)
	for {
		ictx, cancel := context.WithTimeout(between, SessionIdle)
		f, err := replstream.Receive(ictx, frames)
		cancel()
		if err != nil && (errors.Is(err, io.EOF) || between.Err() != nil) {
			return nil // the primary closed the session, or this server stops, between writes
		}
		if err != nil {
			return err
		}
		var req replstream.Request
		if err := replstream.DecodeJSON(f, replstream.KindRequest, &req); err != nil {
			return err
		}
		rp, err := req.Check()
		if err != nil {
			return err
		}
		if err := r.serveOne(ctx, origin, rp, req, self, frames, bw, report); err != nil {
			return err
		}
	}
}

// maxAnswerError bounds the error an answer carries.
const maxAnswerError = 2 << 10

// serveOne applies one request's body and answers it. It fails (the
// session ends) only when the stream is no longer at a frame boundary
// or the answer cannot be sent.
func (r *Receiver) serveOne(ctx context.Context, origin Origin, rp names.RepoPath, req replstream.Request, self int64,
	frames <-chan replstream.Frame, out *bufio.Writer, report func(Applied)) error {
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, r.writeTimeout())
	defer cancel()
	body := replstream.NewBody(bctx, frames)
	w := SyncWrite{Epoch: req.Epoch, Generation: req.Generation, Fingerprint: req.Fingerprint}
	werr := r.applyPack(ctx, origin, rp, w, body, self)
	// What a failed write left unread; a committed write answers "held"
	// even if the stream then breaks: it is held.
	drainErr := body.Drain()
	report(Applied{Repo: rp.String(), Epoch: req.Epoch, Generation: req.Generation, Duration: time.Since(start), Err: werr})
	var ans replstream.Answer
	if werr != nil {
		ans.Error = printable.Line(werr.Error())
		if len(ans.Error) > maxAnswerError {
			ans.Error = ans.Error[:maxAnswerError]
		}
	}
	if err := replstream.WriteJSON(out, replstream.KindAnswer, ans); err != nil {
		return fmt.Errorf("replication session: answer: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("replication session: answer: %w", err)
	}
	if drainErr != nil {
		return fmt.Errorf("replication session: %s: %w", rp, drainErr)
	}
	return nil
}
