package testworld

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped HAProxy configuration is valid, and so is the one the
// cluster tests make of it.
func TestShippedBalancerConfig(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (make deps installs it)")
	}
	shipped, err := ShippedBalancerConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nodes := []*Node{{Name: "node-1", Addr: "127.0.0.2:2201"}, {Name: "node-2", Addr: "127.0.0.3:2202"}}
	made, err := BalancerConfig(shipped, "127.0.0.1:2200", filepath.Join(dir, "sock"), nodes)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bind 127.0.0.1:2200", "server node-1 127.0.0.2:2201 source " + BalancerSource,
		"server node-2 127.0.0.3:2202", "send-proxy-v2", "check-send-proxy"} {
		if !strings.Contains(made, want) {
			t.Errorf("made configuration lacks %q:\n%s", want, made)
		}
	}
	if strings.Contains(made, " 10.0.0.11:2222\n") || strings.Count(made, "\tserver ") != 2 {
		t.Errorf("made configuration keeps a shipped node:\n%s", made)
	}
	for name, cfg := range map[string]string{"shipped": shipped, "made": made} {
		path := filepath.Join(dir, name+".cfg")
		os.WriteFile(path, []byte(cfg), 0o600)
		if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c, %s configuration: %v\n%s", name, err, out)
		}
	}
	if _, err := BalancerConfig("global\n", "x", "y", nodes); err == nil {
		t.Error("a configuration without bind and server lines was taken")
	}
}
