package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestOneStatePerServer: a backup that refuses cpm's key is blocked with
// that cause and its own fix in server list, sync status, doctor and the
// metrics alike; once the key is installed, server check lifts the block
// and everything says ok; after server remove its metrics are gone.
func TestOneStatePerServer(t *testing.T) {
	c := newCompany(t)
	d := c.w.StartBackupSSHD("b1")
	authorized, _ := os.ReadFile(d.AuthorizedKeys)
	os.WriteFile(d.AuthorizedKeys, nil, 0o600) // cpm's key is not installed
	path := filepath.Join(c.w.Root, "b1-replicas")
	c.w.MustAdmin("server", "add", "b1", "--host", "127.0.0.1", "--port", d.Port(), "--user", d.User,
		"--path", path, "--role", "backup", "--host-key", d.HostKey())

	waitFor(t, 30*time.Second, "b1 blocked", func() bool { return serverRow(t, c, "b1")["state"] == "blocked" })
	row := serverRow(t, c, "b1")
	if !strings.Contains(row["cause"].(string), "refused cpm's key") || !strings.Contains(row["fix"].(string), "install -o "+d.User) {
		t.Errorf("server list: %v", row)
	}
	if out := c.w.MustAdmin("server", "list"); !strings.Contains(out, "blocked: ") || !strings.Contains(out, "fix b1: install") {
		t.Errorf("server list:\n%s", out)
	}
	for _, j := range jsonList(t, c.w, "sync", "status") {
		if j["server"] == "b1" && (j["state"] != "blocked" || !strings.Contains(j["last_error"].(string), "refused cpm's key")) {
			t.Errorf("sync status row of a blocked server: %v", j)
		}
	}
	r := c.w.Admin("", "doctor")
	if r.Code == 0 || !strings.Contains(r.Stdout, "b1: blocked: ") || !strings.Contains(r.Stdout, "install -o "+d.User) {
		t.Errorf("doctor (exit %d):\n%s", r.Code, r.Stdout)
	}
	m := metricsText(t, c.srv.MetricsAddr)
	for _, want := range []string{`cpm_replication_target_state{state="blocked",target="b1"} 1`, `cpm_replication_target_up{target="b1"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The operator installs the key; a passing check lifts the block.
	os.WriteFile(d.AuthorizedKeys, authorized, 0o600)
	out := c.w.MustAdmin("server", "check", "b1")
	if !strings.Contains(out, "unblocked: it was blocked") {
		t.Errorf("server check of a blocked server that now answers:\n%s", out)
	}
	waitFor(t, 30*time.Second, "b1 ok", func() bool { return serverRow(t, c, "b1")["state"] == "ok" })
	for _, j := range jsonList(t, c.w, "sync", "status") {
		if j["server"] == "b1" && j["state"] != "done" {
			t.Errorf("sync status after the fix: %v", j)
		}
	}
	if r := c.w.Admin("", "doctor"); r.Code != 0 {
		t.Errorf("doctor after the fix (exit %d):\n%s", r.Code, r.Stdout)
	}
	if m := metricsText(t, c.srv.MetricsAddr); !strings.Contains(m, `cpm_replication_target_up{target="b1"} 1`) ||
		!strings.Contains(m, `cpm_replication_target_state{state="ok",target="b1"} 1`) {
		t.Errorf("metrics after the fix:\n%s", grepLines(m, "b1"))
	}

	c.w.MustAdmin("server", "remove", "b1")
	if m := metricsText(t, c.srv.MetricsAddr); strings.Contains(m, `target_up{target="b1"}`) || strings.Contains(m, `target_state{state="ok",target="b1"}`) {
		t.Errorf("metrics of a removed server:\n%s", grepLines(m, "b1"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
