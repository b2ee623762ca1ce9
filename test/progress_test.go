package test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestSyncProgress: on a terminal, sync push and pull draw a progress bar
// and end with the summary line; rsync's statistics never show. Off a
// terminal, the summary line is all.
func TestSyncProgress(t *testing.T) {
	script := needCommand(t, "script")
	c := newCompany(t)
	backup(t, c.w, "b1")
	out := c.w.MustAdmin("sync", "push", "acme/web", "--to", "b1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "synced acme/web to b1: ") {
		t.Errorf("sync push off a terminal:\n%s", out)
	}
	// script(1) runs the command on a pseudo-terminal of its own.
	onTerminal := func(args ...string) string {
		t.Helper()
		line := "'" + bin.Admin + "' --data-dir '" + c.w.DataDir + "' " + strings.Join(args, " ")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, "-qefc", line, "/dev/null")
		cmd.Env = testworld.Env()
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s on a terminal: %v\n%s", line, err, b)
		}
		return string(b)
	}
	for _, tc := range []struct{ args, summary string }{
		{"sync push acme/pub --to b1", "synced acme/pub to b1: "},
		{"sync pull acme/pub --from b1", "pulled acme/pub from b1: "},
	} {
		out := onTerminal(tc.args)
		if !strings.Contains(out, "100% [####################]") || !strings.Contains(out, "/s)") || !strings.Contains(out, tc.summary) {
			t.Errorf("%s on a terminal: no bar or no summary:\n%q", tc.args, out)
		}
		for _, never := range []string{"Number of files", "Total bytes sent", "to-chk="} {
			if strings.Contains(out, never) {
				t.Errorf("%s on a terminal shows rsync's own %q:\n%s", tc.args, never, out)
			}
		}
	}
}
