package gitservice

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidProtocol(t *testing.T) {
	for v, want := range map[string]bool{
		"version=2":                    true,
		"version=2:object-format=sha1": true,
		"":                             false,
		"version=2\nX=1":               false,
		"version=2;rm -rf":             false,
		strings.Repeat("a", 129):       false,
	} {
		if got := ValidProtocol(v); got != want {
			t.Errorf("ValidProtocol(%q) = %v", v, got)
		}
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		r        Request
		args     []string
		protocol string
	}{
		{"upload-pack is strict", Request{Service: UploadPack, Dir: "/r.git", Protocol: "version=2"},
			[]string{"git", "-c", "transfer.hideRefs=refs/cpm/", "upload-pack", "--strict", "/r.git"}, "GIT_PROTOCOL=version=2"},
		{"extra options before the directory", Request{Service: UploadPack, Dir: "/r.git", Args: []string{"--timeout=60"}},
			[]string{"git", "-c", "transfer.hideRefs=refs/cpm/", "upload-pack", "--strict", "--timeout=60", "/r.git"}, ""},
		{"receive-pack, bad protocol dropped", Request{Service: ReceivePack, Dir: "/r.git", Protocol: "version=2\nEVIL=1"},
			[]string{"git", "-c", "transfer.hideRefs=refs/cpm/", "receive-pack", "/r.git"}, ""},
		{"a node's own copy for another node keeps refs/cpm", Request{Service: UploadPack, Dir: "/r.git", Replication: true},
			[]string{"git", "upload-pack", "--strict", "/r.git"}, ""},
		{"smart HTTP's advertisement", Request{Service: UploadPack, Dir: "/r.git", Stateless: Advertise, Protocol: "version=2"},
			[]string{"git", "-c", "transfer.hideRefs=refs/cpm/", "upload-pack", "--strict", "--stateless-rpc", "--advertise-refs", "/r.git"}, "GIT_PROTOCOL=version=2"},
		{"smart HTTP's push", Request{Service: ReceivePack, Dir: "/r.git", Stateless: RPC},
			[]string{"git", "-c", "transfer.hideRefs=refs/cpm/", "receive-pack", "--stateless-rpc", "/r.git"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Command(context.Background(), tc.r)
			if !slices.Equal(c.Args, tc.args) {
				t.Errorf("args %q, want %q", c.Args, tc.args)
			}
			var proto string
			for _, kv := range c.Env {
				if strings.HasPrefix(kv, "GIT_PROTOCOL=") {
					proto = kv
				}
			}
			if proto != tc.protocol || c.Dir != tc.r.Dir {
				t.Errorf("GIT_PROTOCOL %q (want %q), dir %q", proto, tc.protocol, c.Dir)
			}
		})
	}
}

func TestRun(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	ctx := context.Background()
	var out bytes.Buffer
	w := &CountingWriter{W: &out}
	in := &CountingReader{R: strings.NewReader("0000")}
	o := Run(ctx, Command(ctx, Request{Service: UploadPack, Dir: repo}), Streams{Stdin: in, Stdout: w})
	if o.Status != 0 || o.Err != nil || !strings.HasSuffix(out.String(), "0000") || w.N() != int64(out.Len()) {
		t.Fatalf("upload-pack of an empty repository: %+v %q (%d bytes counted)", o, out.String(), w.N())
	}

	// A command that exits non-zero: its status, no error.
	if o := Run(ctx, exec.CommandContext(ctx, "sh", "-c", "exit 3"), Streams{}); o.Status != 3 || o.Err != nil {
		t.Errorf("exit 3: %+v", o)
	}

	// The client goes away: the command and what it started are killed.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	o = Run(cctx, exec.CommandContext(cctx, "sh", "-c", "sleep 30 & sleep 30; wait"), Streams{})
	if o.Err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("cancelled run: %+v after %v", o, time.Since(start))
	}
}

// brokenWriter is a client that has hung up.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// With Finish, a command whose client is gone still runs to its end (as
// receive-pack must, for post-receive); without it, its next write kills it.
func TestRunFinishAfterHangup(t *testing.T) {
	for _, tc := range []struct {
		finish bool
		ran    bool
	}{{finish: true, ran: true}, {finish: false, ran: false}} {
		t.Run(fmt.Sprintf("finish=%v", tc.finish), func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			ctx := context.Background()
			// The first write fails; the second meets a closed pipe unless
			// the output is discarded.
			script := "echo report; sleep 0.2; echo more; echo more >&2; touch " + marker
			o := Run(ctx, exec.CommandContext(ctx, "sh", "-c", script),
				Streams{Stdout: brokenWriter{}, Stderr: brokenWriter{}, Finish: tc.finish})
			_, err := os.Stat(marker)
			if ran := err == nil; ran != tc.ran {
				t.Errorf("ran to the end: %v, want %v (%+v)", ran, tc.ran, o)
			}
			if tc.finish && (o.Status != 0 || o.Err != nil) {
				t.Errorf("finished run: %+v", o)
			}
		})
	}
}

func TestProtocolVersion(t *testing.T) {
	for v, want := range map[string]int{
		"": 0, "version=2": 2, "version=1": 1, "version=1:version=2": 2, "object-format=sha1:version=2": 2,
		"version=2\nx": 0, "version=x": 0, "version=99999999999999999999": 0,
	} {
		if got := ProtocolVersion(v); got != want {
			t.Errorf("ProtocolVersion(%q) = %d, want %d", v, got, want)
		}
	}
}
