package remote

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	ok := Target{Name: "b", Host: "backup.example.com", Port: 22, User: "cpm", Path: "/srv/cpm"}
	if err := CheckTarget(ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Target{
		{Host: "-oProxyCommand=touch x", Port: 22, User: "cpm", Path: "/srv"},
		{Host: "a b", Port: 22, User: "cpm", Path: "/srv"},
		{Host: "h", Port: 0, User: "cpm", Path: "/srv"},
		{Host: "h", Port: 22, User: "-l", Path: "/srv"},
		{Host: "h", Port: 22, User: "cpm", Path: "relative"},
		{Host: "h", Port: 22, User: "cpm", Path: "/srv/../etc"},
		{Host: "h", Port: 22, User: "cpm", Path: "/srv;rm -rf /"},
		{Host: "h", Port: 22, User: "cpm", Path: "/srv/$(id)"},
	} {
		if err := CheckTarget(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if err := CheckTarget(Target{Host: "127.0.0.2", Port: 2222, User: "root", Path: "/x"}); err != nil {
		t.Error(err)
	}
}

func TestSSHArgsArePinned(t *testing.T) {
	args := strings.Join(Env{Key: "/k", KnownHosts: "/kh"}.SSHArgs(Target{Port: 2222}), " ")
	for _, want := range []string{"StrictHostKeyChecking=yes", "UserKnownHostsFile=/kh", "BatchMode=yes", "IdentitiesOnly=yes", "GlobalKnownHostsFile=/dev/null", "-p 2222"} {
		if !strings.Contains(args, want) {
			t.Errorf("ssh args lack %s: %s", want, args)
		}
	}
	if strings.Contains(args, "StrictHostKeyChecking=no") {
		t.Error("StrictHostKeyChecking=no")
	}
}

func TestHostKeysAndKnownHosts(t *testing.T) {
	line := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host@x"
	k, err := ParseHostKey(line)
	if err != nil || strings.Contains(k, "host@x") {
		t.Fatalf("%q %v", k, err)
	}
	if k2, err := ParseHostKey("[127.0.0.1]:2222 " + k); err != nil || k2 != k {
		t.Errorf("known_hosts form: %q %v", k2, err)
	}
	for _, bad := range []string{"", "junk", k + "\n" + k} {
		if _, err := ParseHostKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if fp := Fingerprint(k); !strings.HasPrefix(fp, "SHA256:") {
		t.Errorf("fingerprint %q", fp)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := WriteKnownHosts(p, []Pinned{{"b1", k}, {"b2", k}, {"x", ""}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "cpm-server.b1 "+k+"\ncpm-server.b2 "+k+"\n" {
		t.Errorf("known_hosts:\n%s", b)
	}
}

// Two servers on one host:port, or one server re-pinned, never share a
// control socket; the same server, pin and key always do.
func TestControlPathPerServerAndPin(t *testing.T) {
	e := Env{ControlDir: "/c"}
	base := Target{Name: "b1", Host: "h", Port: 22, User: "cpm", HostKey: "ssh-ed25519 AAAA1"}
	other := base
	other.Name = "b2"
	repinned := base
	repinned.HostKey = "ssh-ed25519 AAAA2"
	next := base
	next.UseNext = true
	paths := map[string]bool{}
	for _, tg := range []Target{base, other, repinned, next} {
		p := e.controlPath(tg)
		if p == "" || paths[p] {
			t.Fatalf("control path %q for %+v is empty or shared", p, tg)
		}
		paths[p] = true
	}
	if e.controlPath(base) != e.controlPath(base) {
		t.Error("control path is not stable")
	}
	args := strings.Join(e.SSHArgs(base), " ")
	if !strings.Contains(args, "HostKeyAlias=cpm-server.b1") {
		t.Errorf("ssh args lack the server's alias: %s", args)
	}
}

// The fence runs a command on a backup until promote leaves its marker,
// then refuses with the marker's notice; neighbours are not fenced.
func TestFence(t *testing.T) {
	dir := t.TempDir()
	tg := Target{Name: "b1", Path: dir}
	run := func(tg Target) (string, string, int) {
		cmd := exec.Command("sh", "-c", Fence(tg, "echo ran"))
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return stdout.String(), stderr.String(), code
	}
	if out, _, code := run(tg); out != "ran\n" || code != 0 {
		t.Fatalf("before promote: %q exit %d", out, code)
	}
	os.MkdirAll(filepath.Join(dir, ".cpm"), 0o700)
	os.WriteFile(filepath.Join(dir, PromotedMarker), []byte("2026-12-01T10:00:00Z by b1:/srv/cpm\n"), 0o600)
	out, stderr, code := run(tg)
	if out != "" || code != PromotedExit {
		t.Fatalf("after promote: ran anyway (%q, exit %d)", out, code)
	}
	e := &Error{Op: "ssh b1", Code: code, Stderr: stderr}
	if !e.Blocking() || !e.Promoted() || e.Error() != "ssh b1: promoted on 2026-12-01T10:00:00Z by b1:/srv/cpm; this node is no longer its main" {
		t.Errorf("error %q, blocking %v", e.Error(), e.Blocking())
	}
	peer := tg
	peer.Peer = true
	if out, _, _ := run(peer); out != "ran\n" {
		t.Errorf("a neighbour was fenced: %q", out)
	}
}
