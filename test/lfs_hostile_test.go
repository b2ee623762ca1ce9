package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sessionEvents are the server's "session" log events for command.
func sessionEvents(log, command string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(log, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil && ev["message"] == "session" && ev["command"] == command {
			out = append(out, ev)
		}
	}
	return out
}

// TestLFSHostileRequests: a reader's batch over the request limit is
// refused with 413 before the server holds it, and a refusal that ends an
// LFS session is logged and counted as a refusal, not an internal error.
func TestLFSHostileRequests(t *testing.T) {
	c := newCompany(t)
	reader := c.clients["reader"]
	long := strings.Repeat("a", 60000)
	lines := []string{"batch\n", "\x01"}
	for range 40 { // 2.4 MB of lines, each under git's packet limit
		lines = append(lines, long)
	}
	hostile := pkt("version 1\n", "") + pkt(append(lines, "")...)
	r := reader.SSHInput(hostile, nil, "git-lfs-transfer acme/web download")
	if !strings.Contains(r.Stdout, "status 413") || !strings.Contains(r.Stderr, "cpm: git-lfs-transfer: batch: request too large") {
		t.Fatalf("oversized batch: exit %d, stdout %.200q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// A put-object in a download session ends it: the data that follows
	// cannot be skipped.
	put := pkt("version 1\n", "") + pkt("put-object "+strings.Repeat("0", 64)+"\n", "size=1\n", "\x01", "x", "")
	r = reader.SSHInput(put, nil, "git-lfs-transfer acme/web download")
	if !strings.Contains(r.Stdout, "status 403") || !strings.Contains(r.Stderr, "put-object belongs to an upload session") {
		t.Fatalf("put-object in a download session: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	var evs []map[string]any
	waitFor(t, 10*time.Second, "two git-lfs-transfer session events", func() bool {
		evs = sessionEvents(c.srv.Log(), "git-lfs-transfer")
		return len(evs) == 2
	})
	for _, ev := range evs {
		if ev["decision"] != "deny" || ev["level"] != "warn" || ev["error"] != nil {
			t.Errorf("session event: %v, want decision deny at level warn", ev)
		}
	}
	m := metricsText(t, c.srv.MetricsAddr)
	if !strings.Contains(m, `cpm_sessions_total{command="git-lfs-transfer",decision="deny"} 2`) ||
		strings.Contains(m, `cpm_sessions_total{command="git-lfs-transfer",decision="error"}`) {
		t.Errorf("metrics:\n%s", grepLines(m, "git-lfs-transfer"))
	}
}
