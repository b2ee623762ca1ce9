package gitservice

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// The arguments of git archive --remote: what names a ref under
// refs/cpm/ is refused, everything else goes to git unchanged, and a
// stream that is no argument list is refused.
func TestGuardArchive(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q", dir}, {"-C", dir, "commit", "-q", "--allow-empty", "-m", "x"},
		{"-C", dir, "update-ref", "refs/cpm/diverged/2/refs/heads/main", "HEAD"}} {
		if out, err := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, c := range []struct {
		name, in string
		ok       bool
	}{
		{"a branch", pkt("argument --format=tar\n") + pkt("argument HEAD\n") + "0000rest", true},
		{"a path", pkt("argument HEAD\n") + pkt("argument src/cpm/x\n") + "0000", true},
		{"the full name", pkt("argument refs/cpm/diverged/2/refs/heads/main\n") + "0000", false},
		{"a short name", pkt("argument cpm/diverged/2/refs/heads/main:x\n") + "0000", false},
		{"a short name git cannot resolve here", pkt("argument cpm/diverged/9/refs/heads/gone\n") + "0000", false},
		{"a separate option value", pkt("argument --prefix\n") + pkt("argument cpm/diverged/2/refs/heads/main\n") + "0000", false},
		{"no flush", pkt("argument HEAD\n"), false},
		{"a bad length", "zzzz", false},
		{"no argument line", pkt("want x\n") + "0000", false},
		{"too many", strings.Repeat(pkt("argument HEAD\n"), maxArchiveArgs+1) + "0000", false},
	} {
		r, err := GuardArchive(context.Background(), strings.NewReader(c.in), dir)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if err == nil {
			if got, _ := io.ReadAll(r); string(got) != c.in {
				t.Errorf("%s: git gets %q, want %q", c.name, got, c.in)
			}
		}
	}
}
