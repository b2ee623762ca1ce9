package node

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"cpm/internal/gitservice"
	"cpm/internal/relay"
	"cpm/internal/store"
)

// relay runs a user's session on another node of this cluster, the
// repository's primary, as `cpm-peer relay` over the same pinned ssh and
// replication key that copying uses (runPeer: the primary's words reach
// the user, ssh's go to the log; the gateway tells the user the primary
// is unreachable when this returns an error).
func (n *Node) relay(ctx context.Context, to store.Server, h relay.Header, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if to.Role != store.Node || !to.Eligible() {
		return 1, fmt.Errorf("%s is not a node of this cluster", to.Name)
	}
	var header bytes.Buffer
	if err := relay.Write(&header, h); err != nil {
		return 1, fmt.Errorf("relay to %s: %w", to.Name, err)
	}
	in := io.Reader(&header)
	if stdin != nil {
		in = io.MultiReader(&header, stdin)
	}
	// Finish: a client that hung up must not stall the primary's output
	// half way (a push's post-receive still runs there).
	return n.runPeer(ctx, to, "cpm-peer relay", gitservice.Streams{Stdin: in, Stdout: stdout, Stderr: stderr, Finish: true})
}
