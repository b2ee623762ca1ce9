package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"cpm/internal/gitservice"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// maxSSHWords is how much of ssh's own diagnostics a session keeps for
// the log.
const maxSSHWords = 4 << 10

// runPeer runs `cpm-peer …` on another node or neighbour, over its pinned
// host key with this node's replication key, for one user's session: the
// other side's stdout and stderr reach the user's streams as they come,
// and ssh's own words never do. ssh writes those (errors such as
// "connect to host 127.0.0.2 port 22: Connection refused", internal
// addresses included) to a log file of its own (-E), which goes to the
// error this returns and from there to the log only; so the user's
// stderr carries the other side's bytes alone, and cpm's one line says
// what failed. The process runs as git's do (gitservice.Run: its own
// process group, killed with ctx, WaitDelay, a status never below 0).
//
// It returns the other side's exit status, and an error when it could
// not be reached or did not answer to the end: status 255 with words of
// ssh's own (a status 255 without them is the other side's).
func (n *Node) runPeer(ctx context.Context, to store.Server, command string, s gitservice.Streams) (int, error) {
	env := remote.ForDataDir(n.Dir)
	// A connection of its own, not replication's multiplexed one: the
	// other side takes max_sessions sessions per connection, and users'
	// sessions are more, and must not queue behind syncs.
	env.ControlDir = ""
	logFile, err := os.CreateTemp(n.Dir.Tmp(), "peer-ssh-*.log")
	if err != nil {
		return 1, fmt.Errorf("%s on %s: ssh's log: %w", command, to.Name, err)
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	cmd := env.Command(ctx, transfer.TargetOf(to), command)
	cmd.Args = slices.Insert(cmd.Args, 1, "-E", logFile.Name())
	out := gitservice.Run(ctx, cmd, s)
	words, _ := io.ReadAll(io.LimitReader(logFile, maxSSHWords))
	said := strings.TrimSpace(string(words))
	switch {
	case out.Err != nil:
		return out.Status, fmt.Errorf("%s on %s: %w (ssh: %q)", command, to.Name, out.Err, said)
	case out.Status == 255 && said != "":
		return 255, fmt.Errorf("%s on %s: ssh failed: %s", command, to.Name, said)
	}
	return out.Status, nil
}
