package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

func TestConfigPrecedenceAndShow(t *testing.T) {
	w := testworld.New(t, bin)
	cfg := filepath.Join(w.Root, "cpm.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:1111\nworkers: 3\nidle_timeout: 5m\nlog_level: debug\n"), 0o600)
	cmd := exec.Command(bin.Admin, "--config", cfg, "--data-dir", w.DataDir, "config", "show", "--json")
	cmd.Env = append(testworld.Env(), "CPM_WORKERS=6", "CPM_LOG_LEVEL=warn")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("config show: %v", err)
	}
	var vals []map[string]string
	if err := json.Unmarshal(out, &vals); err != nil {
		t.Fatalf("config show --json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, v := range vals {
		got[v["key"]] = v["value"] + " from " + v["source"]
	}
	for k, want := range map[string]string{
		"listen":       "127.0.0.1:1111 from file",
		"workers":      "6 from env",
		"log_level":    "warn from env",
		"idle_timeout": "5m from file",
		"data_dir":     w.DataDir + " from flag",
		"per_target":   "2 from default",
	} {
		if got[k] != want {
			t.Errorf("config show: %s = %q, want %q", k, got[k], want)
		}
	}

	// The server reads the same file; its flags beat it.
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:1\n"), 0o600)
	srv := w.StartServer("--config", cfg, "--listen", "127.0.0.1:0")
	if !strings.HasPrefix(srv.SSHAddr, "127.0.0.1:") || srv.SSHAddr == "127.0.0.1:1" {
		t.Errorf("serve with a file and a flag: ssh %q", srv.SSHAddr)
	}

	// Unknown keys and bad values stop every command at start, in one line.
	for body, want := range map[string]string{
		"listn: 127.0.0.1:1\n":   "unknown setting listn",
		"workers: lots\n":        `workers "lots" (in the file)`,
		"idle_timeout: [1, 2]\n": "want a single value",
		"log_format: fancy\n":    "want one of json, console",
		"listen: 127.0.0.1:x\n":  "bad port",
		"backoff_min: 1h\n":      "below backoff_min",
	} {
		os.WriteFile(cfg, []byte(body), 0o600)
		for _, c := range [][]string{{bin.Admin, "user", "list"}, {bin.Shell, "serve"}} {
			cmd := exec.Command(c[0], append([]string{"--config", cfg, "--data-dir", w.DataDir}, c[1:]...)...)
			cmd.Env = testworld.Env()
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), want) || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
				t.Errorf("%s with %q: %v %q, want one line with %q", filepath.Base(c[0]), body, err, out, want)
			}
		}
	}
	cmd = exec.Command(bin.Shell, "serve", "--data-dir", w.DataDir, "--max-startups", "0")
	cmd.Env = testworld.Env()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "from --max-startups") {
		t.Errorf("bad flag: %v %s", err, out)
	}
}

func TestDoctor(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	waitFor(t, 30e9, "the backup", func() bool { return revParse(filepath.Join(path, "acme", "web.git"), "main") != "" })
	if r := c.w.Admin("", "doctor"); r.Code != 0 || strings.Contains(r.Stdout, "FAIL") {
		t.Fatalf("doctor on a healthy install: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Break one thing of each kind.
	os.Chmod(filepath.Join(c.w.DataDir, "cpm.db"), 0o644)
	os.Remove(filepath.Join(c.w.RepoDir("acme", "web"), "hooks", "pre-receive"))
	os.RemoveAll(c.w.RepoDir("acme", "pub"))
	os.MkdirAll(c.w.RepoDir("stray", "thing"), 0o755)
	c.w.MustAdmin("server", "add", "gone", "--host", "127.0.0.1", "--port", "1", "--path", "/tmp/x",
		"--role", "backup", "--host-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
	r := c.w.Admin("", "doctor")
	if r.Code == 0 {
		t.Fatalf("doctor passed a broken install:\n%s", r.Stdout)
	}
	for _, want := range []string{
		"FAIL  file modes", "cpm.db is 0644",
		"FAIL  hooks", "acme/web lacks cpm's hooks",
		"FAIL  repositories on disk", "acme/pub is missing on disk", "stray/thing is on disk but not in the database",
		"FAIL  servers reachable", "gone:",
		"fix: run cpm-admin init",
		"ok    database integrity",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.Stdout)
		}
	}
	wantError(t, r, "checks failed")
}
