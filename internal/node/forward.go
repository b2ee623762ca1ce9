package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"cpm/internal/gateway"
	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// forward sends a push made to a replica of origin's repository to
// origin, over the same pinned ssh and key that replication uses.
func (n *Node) forward(ctx context.Context, origin string, repo names.RepoPath, fingerprint string, stdin io.Reader) (gateway.ForwardedPush, error) {
	srv, err := n.Store.ServerByName(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("origin %s: %w", origin, err)
	}
	if srv.Role != store.Neighbor || !srv.Eligible() {
		return nil, fmt.Errorf("origin %s is not an approved neighbour here", origin)
	}
	env := remote.ForDataDir(n.Dir)
	cmd := env.Command(ctx, transfer.TargetOf(srv), "cpm-peer forward "+repo.String()+" "+fingerprint)
	// Copied by a goroutine of ours, not exec's: Wait must return when
	// the origin is done, though the client keeps its side open until
	// the session ends.
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p := &forwardedPush{cmd: cmd}
	cmd.Stderr = &p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.Reader = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("forward to %s: %w", origin, err)
	}
	go func() {
		io.Copy(in, stdin)
		in.Close()
	}()
	return p, nil
}

type forwardedPush struct {
	io.Reader
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

func (p *forwardedPush) Wait() (int, error) {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// The origin's refusal or git's failure: the user saw git's own
		// output; the status says the rest.
		return ee.ExitCode(), nil
	}
	return 0, err
}
