package test

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cpm/internal/testworld"
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

// TestLFSUploadLeftovers: an upload whose server dies mid-way leaves its
// temporary file under lfs/tmp; doctor reports it once it is stale, and
// maintenance removes it, while a live upload's file stays.
func TestLFSUploadLeftovers(t *testing.T) {
	c := newCompany(t)
	tmp := filepath.Join(c.w.RepoDir("acme", "web"), "lfs", "tmp")
	host, port, _ := net.SplitHostPort(c.srv.SSHAddr)
	w := c.clients["writer"]
	ssh := exec.Command("ssh", append(append(w.SSHArgs(), "-p", port, "git@"+host), "git-lfs-transfer acme/web upload")...)
	ssh.Env = testworld.Env()
	in, err := ssh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ssh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ssh.Process.Kill(); ssh.Wait() }()
	// Half of a 1 MB object, then nothing: the upload is under way.
	io.WriteString(in, pkt("put-object "+strings.Repeat("1", 64)+"\n", "size=1000000\n", "\x01", strings.Repeat("x", 60000)))
	var dead string
	waitFor(t, 20*time.Second, "the upload's temporary file", func() bool {
		found, _ := filepath.Glob(filepath.Join(tmp, "*"))
		if len(found) == 1 {
			dead = found[0]
		}
		return dead != ""
	})
	c.srv.Signal(syscall.SIGKILL)
	if ok, _ := c.srv.Wait(10 * time.Second); !ok {
		t.Fatal("the server outlived SIGKILL")
	}
	if _, err := os.Stat(dead); err != nil {
		t.Fatalf("no leftover after the server died: %v", err)
	}
	if out := c.w.MustAdmin("doctor"); !strings.Contains(out, "ok    lfs uploads") {
		t.Errorf("doctor reports a fresh temporary file:\n%s", out)
	}
	// A day later (doctor's max_session_time is the default 6h: stale
	// after 12h); and a live upload's file next to it.
	day := time.Now().Add(-24 * time.Hour)
	os.Chtimes(dead, day, day)
	live := filepath.Join(tmp, strings.Repeat("2", 64)+"-live")
	os.WriteFile(live, []byte("x"), 0o644)
	doc := c.w.Admin("", "doctor")
	if doc.Code == 0 || !strings.Contains(doc.Stdout, "FAIL  lfs uploads") || !strings.Contains(doc.Stdout, filepath.Base(dead)) ||
		strings.Contains(doc.Stdout, "-live") {
		t.Errorf("doctor with a stale temporary file (exit %d):\n%s", doc.Code, doc.Stdout)
	}
	// max-session-time 1m: anything untouched for 2m is no upload's any more.
	c.srv = c.w.StartServer("--repack", "1s", "--max-session-time", "1m")
	waitFor(t, 20*time.Second, "maintenance to remove the leftover", func() bool {
		_, err := os.Stat(dead)
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live upload's file was removed: %v", err)
	}
	if out := c.w.MustAdmin("doctor"); !strings.Contains(out, "ok    lfs uploads") {
		t.Errorf("doctor after maintenance:\n%s", out)
	}
}
