package node

import (
	"context"
	"fmt"
	"io"

	"cpm/internal/gateway"
	"cpm/internal/gitservice"
	"cpm/internal/names"
	"cpm/internal/store"
)

// forward sends a push made to a replica of origin's repository to
// origin, over the same pinned ssh and key that replication uses, with
// runPeer as a relay does; the gateway reads the origin's answer from the
// returned stream while it runs.
func (n *Node) forward(ctx context.Context, origin string, repo names.RepoPath, fingerprint string, stdin io.Reader) (gateway.ForwardedPush, error) {
	srv, err := n.Store.ServerByName(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("origin %s: %w", origin, err)
	}
	if srv.Role != store.Neighbor || !srv.Eligible() {
		return nil, fmt.Errorf("origin %s is not an approved neighbour here", origin)
	}
	pr, pw := io.Pipe()
	p := &forwardedPush{Reader: pr, out: pr, done: make(chan forwardResult, 1)}
	go func() {
		// The origin's stderr is not the user's (its refusals come as the
		// first line on stdout); Finish keeps the origin running to the
		// end once the gateway stops reading.
		status, err := n.runPeer(ctx, srv, "cpm-peer forward "+repo.String()+" "+fingerprint,
			gitservice.Streams{Stdin: stdin, Stdout: pw, Finish: true})
		if err != nil {
			n.Log.Warn().Err(err).Str("repo", repo.String()).Str("target", origin).Msg("forward push")
		}
		pw.Close()
		p.done <- forwardResult{status, err}
	}()
	return p, nil
}

type forwardResult struct {
	status int
	err    error
}

type forwardedPush struct {
	io.Reader
	out  *io.PipeReader
	done chan forwardResult
}

// Wait waits for the origin to finish and returns its exit status: the
// user saw git's own output; the status says the rest. What the gateway
// did not read is discarded, so that the origin is not stalled by it.
func (p *forwardedPush) Wait() (int, error) {
	p.out.Close()
	r := <-p.done
	return r.status, r.err
}
