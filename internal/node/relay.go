package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"cpm/internal/relay"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// relay runs a user's session on another node of this cluster, the
// repository's primary, as `cpm-peer relay` over the same pinned ssh and
// replication key that copying uses.
func (n *Node) relay(ctx context.Context, to store.Server, h relay.Header, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if to.Role != store.Node || !to.Eligible() {
		return 1, fmt.Errorf("%s is not a node of this cluster", to.Name)
	}
	env := remote.ForDataDir(n.Dir)
	// A connection of its own, not replication's multiplexed one: the
	// primary takes max_sessions sessions per connection, and users'
	// sessions are more, and must not queue behind syncs; ssh's words
	// about a busy master would reach the user besides.
	env.ControlDir = ""
	cmd := env.Command(ctx, transfer.TargetOf(to), "cpm-peer relay")
	// Copied by a goroutine of ours, not exec's: Wait must return when
	// the primary is done, though the client keeps its side open until
	// the session ends.
	in, err := cmd.StdinPipe()
	if err != nil {
		return 1, err
	}
	// A client that hung up must not stall the primary's output half
	// way (a push's post-receive still runs there): keep reading it.
	cmd.Stdout, cmd.Stderr = &draining{w: stdout}, &draining{w: stderr}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("relay to %s: %w", to.Name, err)
	}
	go func() {
		if relay.Write(in, h) == nil {
			io.Copy(in, stdin)
		}
		in.Close()
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		// ssh's own status: the primary was not reached, or the
		// connection broke.
		return 255, fmt.Errorf("relay to %s: ssh failed", to.Name)
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	case err != nil:
		return 1, fmt.Errorf("relay to %s: %w", to.Name, err)
	}
	return 0, nil
}

// draining writes to w until a write fails, then swallows the rest.
type draining struct {
	w      io.Writer
	failed bool
}

func (d *draining) Write(p []byte) (int, error) {
	if !d.failed {
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
		}
	}
	return len(p), nil
}
