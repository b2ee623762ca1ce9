// Command cpm-hook runs inside git's receive hooks of every cpm
// repository: pre-receive enforces ref permissions and protected refs,
// post-receive records the push in the audit log, queues it for
// replication and wakes the workers; each then runs the repository's own
// hooks from HOOK.d/. git calls it through the hook scripts that cpm
// installs; people do not run it by hand.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"cpm/internal/hook"
	"cpm/internal/printable"
)

type cli struct {
	DataDir     string   `name:"data-dir" env:"CPM_DATA_DIR" required:"" placeholder:"DIR" help:"Data directory."`
	PreReceive  struct{} `cmd:"" name:"pre-receive" help:"Check a push (git's pre-receive hook)."`
	PostReceive struct{} `cmd:"" name:"post-receive" help:"Record a push (git's post-receive hook)."`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c, kong.Name("cpm-hook"), kong.Writers(stdout, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 2
	}
	ctx := context.Background()
	name := kctx.Command()
	if err := hook.Run(ctx, name, c.DataDir, stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", printable.Line(err.Error()))
		if name == "post-receive" {
			// The push has happened; a failure here must not look like it did not.
			return 0
		}
		return 1
	}
	return 0
}
