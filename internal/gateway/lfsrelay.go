package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/relay"
	"cpm/internal/shellquote"
	"cpm/internal/store"
)

// LFSElsewhere refuses an LFS HTTP request that the repository's primary,
// another node of this cluster, must serve (an upload or lock change; a
// download this node's copy is behind for). The HTTP handler relays the
// request there with RelayLFS; unrelayed, it is a retryable refusal.
type LFSElsewhere struct {
	Primary store.Server
	Repo    names.RepoPath // canonical
	err     error
}

func (e *LFSElsewhere) Error() string { return e.err.Error() }
func (e *LFSElsewhere) Unwrap() error { return e.err }

// RelayedLFS serves one Git LFS HTTP API request that another node
// relayed here (relay mode lfs-http): the HTTP request follows in in,
// the HTTP response goes to out. lfshttp.Handler implements it.
type RelayedLFS interface {
	ServeRelayed(ctx context.Context, req LFSRequest, baseURL string, in io.Reader, out io.Writer) error
}

// RelayLFS serves an LFS HTTP request on the repository's primary
// through the nodes' ssh, as a git session is relayed: in is the HTTP
// request as the primary is to read it, out gets its HTTP response.
// baseURL is where the client reached this node (actions point there).
// The error is a refusal with the primary's words, or a fault when the
// primary was unreachable.
func (g *Gateway) RelayLFS(ctx context.Context, req LFSRequest, to *LFSElsewhere, baseURL string, in io.Reader, out io.Writer) error {
	start := time.Now()
	cmd := command.Command{Verb: command.LFSTransfer, Repo: to.Repo, Operation: "download"}
	if req.Write {
		cmd.Operation = "upload"
	}
	var stderr strings.Builder
	s := Session{Identity: req.Identity, RemoteAddr: req.RemoteAddr, Hops: req.Hops, Transport: "http", Token: req.Token,
		Command: "git-lfs-transfer " + shellquote.Always(to.Repo.String()+".git") + " " + cmd.Operation,
		LFSURL:  baseURL, Stdin: in, Stdout: out, Stderr: &limitedWriter{w: &stderr, n: 4096}}
	status, err := g.relayOut(ctx, s, cmd, to.Primary)
	if err == nil && status != 0 {
		line := strings.TrimSpace(stderr.String())
		if !strings.HasPrefix(line, "cpm: ") {
			line = "cpm: internal error; try again later"
		}
		err = &refusal{line: line}
	}
	ev := g.Log.Info()
	if err != nil {
		ev = g.Log.Warn().Str("reason", clientLine(err))
	}
	ev.Str("transport", "http").Str("user", req.Identity.Name()).Str("remote", req.RemoteAddr).
		Str("repo", to.Repo.String()).Str("operation", cmd.Operation).Str("primary", to.Primary.Name).
		Int64("duration_ms", time.Since(start).Milliseconds()).Msg("lfs relayed")
	return err
}

// serveRelayedLFS serves a relayed LFS HTTP request (relayIn, with the
// user identified afresh here) through the LFS HTTP handler.
func (g *Gateway) serveRelayedLFS(ctx context.Context, id access.Identity, h relay.Header, cmd command.Command, via string, in *bufio.Reader, out, stderr io.Writer) int {
	if g.LFSHTTP == nil {
		fmt.Fprintln(stderr, "cpm: the Git LFS HTTP API is not served on the primary")
		return 1
	}
	req := LFSRequest{Identity: id, Repo: cmd.Repo, Write: cmd.Operation == "upload", RemoteAddr: h.Remote,
		Relayed: via, Hops: max(h.Hops, 1), Token: h.Token}
	if err := g.LFSHTTP.ServeRelayed(ctx, req, h.URL, in, out); err != nil {
		// Nothing reached the client yet: the relaying node answers.
		g.Log.Warn().Err(err).Str("via", via).Str("repo", cmd.Repo.String()).Msg("relayed lfs request")
		fmt.Fprintln(stderr, "cpm: malformed relayed Git LFS request")
		return 1
	}
	return 0
}

// limitedWriter keeps the first n bytes written to w: a refusal's line.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
