package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestNeighborDiscoverLocal scans "this machine's networks" inside a
// network namespace the test makes, whose only networks are a /24 with a
// cpm node on it, a /16, loopback and an IPv6 one.
func TestNeighborDiscoverLocal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	for _, cmd := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("needs %s", cmd)
		}
	}
	a := testworld.New(t, bin)
	b := testworld.New(t, bin)
	b.MustAdmin("init", "--node-name", "node-b")
	script, _ := filepath.Abs("testdata/discover/local.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--pid", "--fork", "--kill-child", script, bin.Shell, bin.Admin, a.DataDir, b.DataDir)
	cmd.Env = testworld.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	text, jsonOut, ok := strings.Cut(string(out), "### discover --json\n")
	jsonOut, _, _ = strings.Cut(jsonOut, "### end")
	if !ok {
		t.Fatalf("output: %s", out)
	}
	// The networks are named before they are scanned; the /16 only with --force.
	for _, want := range []string{"scanning 10.77.0.0/24 (v0)", "skipped 10.99.0.0/16 (v2): larger than a /24; --force scans it", "10.77.0.5", "node-b"} {
		if !strings.Contains(text, want) {
			t.Errorf("discover without CIDR: no %q in\n%s", want, text)
		}
	}
	for _, never := range []string{"127.0.0", "fd00:", "10.77.0.1 "} {
		if strings.Contains(text, never) {
			t.Errorf("discover without CIDR: %q in\n%s", never, text)
		}
	}
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &nodes); err != nil {
		t.Fatalf("--local --json: %v\n%s", err, jsonOut)
	}
	if len(nodes) != 1 || nodes[0]["host"] != "10.77.0.5" || nodes[0]["name"] != "node-b" || nodes[0]["ssh_port"] != float64(2222) {
		t.Errorf("--local --json found %v, want node-b at 10.77.0.5", nodes)
	}

	wantError(t, a.Admin("", "neighbor", "discover", "10.0.0.0/24", "--local"), "not both")
}
