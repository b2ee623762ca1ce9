package repos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallHooks(t *testing.T) {
	dir := t.TempDir()
	h := Hooks{Bin: "/opt/cpm dir/cpm-hook", DataDir: "/srv/it's/data"}
	hooks := filepath.Join(dir, "hooks")
	os.MkdirAll(hooks, 0o755)
	own := "#!/bin/sh\necho mine\n"
	os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte(own), 0o755)
	// An earlier local hook already parked in pre-receive.d is not clobbered.
	os.MkdirAll(filepath.Join(hooks, "pre-receive.d"), 0o755)
	os.WriteFile(filepath.Join(hooks, "pre-receive.d", "50-local-pre-receive"), []byte("older"), 0o755)

	if err := h.Install(dir); err != nil {
		t.Fatal(err)
	}
	if !h.Installed(dir) {
		t.Fatal("Installed() false right after Install")
	}
	script, _ := os.ReadFile(filepath.Join(hooks, "pre-receive"))
	if !strings.Contains(string(script), `exec '/opt/cpm dir/cpm-hook' pre-receive --data-dir '/srv/it'\''s/data'`) {
		t.Errorf("script does not quote its paths:\n%s", script)
	}
	if fi, _ := os.Stat(filepath.Join(hooks, "pre-receive")); fi.Mode().Perm()&0o111 == 0 {
		t.Error("hook not executable")
	}
	if b, _ := os.ReadFile(filepath.Join(hooks, "pre-receive.d", "50-local-pre-receive")); string(b) != "older" {
		t.Error("older local hook clobbered")
	}
	if b, _ := os.ReadFile(filepath.Join(hooks, "pre-receive.d", "50-local-pre-receive-1")); string(b) != own {
		t.Errorf("own hook not kept: %q", b)
	}
	// Again: nothing moves, nothing changes.
	if err := h.Install(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(hooks, "pre-receive.d")); len(entries) != 2 {
		t.Errorf("second install moved things: %v", entries)
	}
	// A new cpm location updates the managed hook in place.
	h2 := Hooks{Bin: "/usr/local/bin/cpm-hook", DataDir: h.DataDir}
	if h2.Installed(dir) {
		t.Error("stale hook reported as installed")
	}
	if err := h2.Install(dir); err != nil || !h2.Installed(dir) {
		t.Errorf("update: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(hooks, "pre-receive.d")); len(entries) != 2 {
		t.Errorf("updating cpm's own hook parked it as a local one: %v", entries)
	}
}
