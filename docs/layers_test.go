package docs

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// layers are the dependencies the architecture forbids: each package
// (with everything it imports, however indirectly; only its own imports
// when direct) must not reach any of the packages listed against it. Go already refuses cycles; these
// are the one-way streets a cycle would not catch.
var layers = []struct {
	pkg, why  string
	forbidden []string
	direct    bool
}{
	{"cpm/internal/gateway", "the gateway serves sessions; the runtime services it calls live in their own packages, not in the admin CLI's",
		[]string{"cpm/internal/admin"}, false},
	{"cpm/internal/node", "a node wires the runtime; cpm-admin's package is not part of it",
		[]string{"cpm/internal/admin"}, false},
	{"cpm/internal/lfs", "LFS queues replication through internal/queue, not the git-hook package",
		[]string{"cpm/internal/hook", "cpm/internal/admin"}, false},
	{"cpm/internal/merge", "merge builds commits; the gateway decides and queues",
		[]string{"cpm/internal/hook", "cpm/internal/queue", "cpm/internal/admin"}, false},
	{"cpm/internal/hook", "cpm-hook runs on every push: nothing of ssh, rsync or the workers",
		[]string{"cpm/internal/replicate", "cpm/internal/transfer", "cpm/internal/ondemand", "cpm/internal/remote", "cpm/internal/admin"}, false},
	{"cpm/internal/queue", "cpm-hook runs on every push: nothing of ssh, rsync or the workers",
		[]string{"cpm/internal/replicate", "cpm/internal/transfer", "cpm/internal/ondemand", "cpm/internal/remote", "cpm/internal/hook"}, false},
	{"cpm/internal/transfer", "the copy engine decides nothing about when: the scheduler and on-demand syncs call it",
		[]string{"cpm/internal/replicate", "cpm/internal/ondemand", "cpm/internal/admin", "cpm/internal/gateway"}, false},
	{"cpm/internal/replicate", "the scheduler runs the queue; on-demand syncs and the admin CLI are its callers' business",
		[]string{"cpm/internal/ondemand", "cpm/internal/admin", "cpm/internal/gateway"}, false},
	{"cpm/internal/ondemand", "on-demand syncs use the copy engine, not the scheduler",
		[]string{"cpm/internal/replicate", "cpm/internal/admin", "cpm/internal/gateway"}, false},
	{"cpm/cmd/cpm-shell", "cpm-shell is flags and a call into internal/node",
		[]string{"cpm/internal/replicate", "cpm/internal/transfer", "cpm/internal/ondemand", "cpm/internal/admin", "cpm/internal/store"}, true},
	{"cpm/cmd/cpm-hook", "cpm-hook is flags and a call into internal/hook",
		[]string{"cpm/internal/queue", "cpm/internal/store", "cpm/internal/access"}, true},
}

func deps(t *testing.T, pkg string, direct bool) []string {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}", pkg}
	if direct {
		args = []string{"list", "-f", `{{join .Imports "\n"}}`, pkg}
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	for _, l := range layers {
		got := deps(t, l.pkg, l.direct)
		for _, f := range l.forbidden {
			if slices.Contains(got, f) {
				t.Errorf("%s depends on %s: %s", l.pkg, f, l.why)
			}
		}
	}
}
