package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"cpm/internal/transfer"
)

// The gate: writes share it; a handover waits for those under way,
// holds new ones back, and a handover that gives up lets them go. Names
// are case-insensitive.
func TestWriteGate(t *testing.T) {
	g := NewWriteGate(t.TempDir())
	push := shared(t, g, "acme/web")
	other := shared(t, g, "acme/api") // another repository is never held
	defer other()
	if _, err := exclusiveWithin(g, "ACME/web", 50*time.Millisecond); err == nil {
		t.Fatal("a handover went ahead of a push under way")
	}
	push()
	release, err := g.Exclusive(context.Background(), "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	got := sharedLater(t, g, "Acme/Web")
	select {
	case <-got:
		t.Fatal("a new push ran during the handover")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	waitClosed(t, got, "a push held back after the handover")
}

// A handover waiting for a push under way already holds back the pushes
// that come after it, so that a stream of overlapping pushes cannot keep
// it out; once it is done they run.
func TestWriteGateQueuesNewPushesBehindAWaitingHandover(t *testing.T) {
	g := NewWriteGate(t.TempDir())
	slow := shared(t, g, "acme/web")
	type result struct {
		release func()
		err     error
	}
	handedOver := make(chan result, 1)
	go func() {
		release, err := g.Exclusive(t.Context(), "acme/web")
		handedOver <- result{release, err}
	}()
	waitTurnstileHeld(t, g, "acme/web") // the handover is waiting now
	next := sharedLater(t, g, "acme/web")
	select {
	case <-next:
		t.Fatal("a new push overtook a waiting handover")
	case <-time.After(100 * time.Millisecond):
	}
	slow()
	r := <-handedOver
	if r.err != nil {
		t.Fatal(r.err)
	}
	release := r.release
	select {
	case <-next:
		t.Fatal("a new push ran during the handover")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	waitClosed(t, next, "a push held back after the handover")
}

// A handover that gives up while a slow push holds the gate withdraws:
// new pushes are not held back behind it, and a push waiting for a
// handover ends with its session.
func TestWriteGateHandoverGivesUp(t *testing.T) {
	g := NewWriteGate(t.TempDir())
	slow := shared(t, g, "acme/web")
	defer slow()
	if _, err := exclusiveWithin(g, "acme/web", 50*time.Millisecond); err == nil {
		t.Fatal("a handover went ahead of a push under way")
	}
	waitClosed(t, sharedLater(t, g, "acme/web"), "a new push waits behind a handover that gave up")
	release, err := g.Exclusive(context.Background(), "acme/api")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer scancel()
	if _, err := g.Shared(sctx, "acme/api"); err == nil {
		t.Fatal("a push ran during a handover")
	}
}

// The gate holds across processes: a push served by another process
// (OpenSSH's forced command) holds a handover here back, and a handover
// here holds that process's push back.
func TestWriteGateAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	g := NewWriteGate(dir)
	other := startGateHolder(t, dir)
	other.waitHeld(t)
	if _, err := exclusiveWithin(g, "acme/web", 100*time.Millisecond); err == nil {
		t.Fatal("a handover went ahead of another process's push")
	}
	other.finish(t)
	release, err := g.Exclusive(context.Background(), "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	late := startGateHolder(t, dir)
	held := make(chan error, 1)
	go func() { held <- late.held() }()
	select {
	case <-held:
		t.Fatal("another process's push ran during the handover")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	waitClosed(t, held, "another process's push held back after the handover")
	late.finish(t)
}

// gateHolder is a process holding acme/web's gate shared (as a push
// session does) from "held" on its stdout until its stdin closes.
type gateHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

const gateHolderDir = "CPM_TEST_GATE_HOLDER"

func startGateHolder(t *testing.T, dir string) *gateHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGateHolderProcess$")
	cmd.Env = append(os.Environ(), gateHolderDir+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &gateHolder{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	return h
}

func (h *gateHolder) waitHeld(t *testing.T) {
	t.Helper()
	if err := h.held(); err != nil {
		t.Fatal(err)
	}
}

// held waits for the holder's "held"; it calls no t, so that it may run
// in a goroutine.
func (h *gateHolder) held() error {
	if line, err := h.out.ReadString('\n'); err != nil || line != "held\n" {
		return fmt.Errorf("gate holder: %q %v", line, err)
	}
	return nil
}

func (h *gateHolder) finish(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("gate holder: %v", err)
	}
}

// TestGateHolderProcess is the gate holder's body when run by
// startGateHolder; otherwise it does nothing.
func TestGateHolderProcess(t *testing.T) {
	dir := os.Getenv(gateHolderDir)
	if dir == "" {
		t.Skip("run by TestWriteGateAcrossProcesses")
	}
	release, err := NewWriteGate(dir).Shared(context.Background(), "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held\n")
	io.Copy(io.Discard, os.Stdin)
	release()
}

func shared(t *testing.T, g *WriteGate, repo string) func() {
	t.Helper()
	release, err := g.Shared(context.Background(), repo)
	if err != nil {
		t.Error(err)
		return func() {}
	}
	return release
}

// sharedLater takes repo's gate in the background (until the test
// ends), releases it at once, and sends the outcome then. The goroutine
// calls no t: it may outlive a test that failed.
func sharedLater(t *testing.T, g *WriteGate, repo string) <-chan error {
	got := make(chan error, 1)
	go func() {
		release, err := g.Shared(t.Context(), repo)
		if err == nil {
			release()
		}
		got <- err
	}()
	return got
}

// waitTurnstileHeld waits until a handover holds repo's turnstile (a
// shared hold cannot be taken).
func waitTurnstileHeld(t *testing.T, g *WriteGate, repo string) {
	t.Helper()
	turnstile, _, err := g.files(repo)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		unlock, held, err := transfer.TryLockFile(turnstile, true)
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			return
		}
		unlock()
	}
	t.Fatal("the handover never held the turnstile")
}

func exclusiveWithin(g *WriteGate, repo string, d time.Duration) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.Exclusive(ctx, repo)
}

func waitClosed(t *testing.T, c <-chan error, what string) {
	t.Helper()
	select {
	case err := <-c:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal(what)
	}
}

// What the gate costs a write session when no handover runs: two lock
// files opened and flocked, against a push's tens of milliseconds.
func BenchmarkWriteGateShared(b *testing.B) {
	g := NewWriteGate(b.TempDir())
	ctx := context.Background()
	for b.Loop() {
		release, err := g.Shared(ctx, "acme/web")
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

// Only a wait that ended tells the client of a handover; a gate that
// cannot be taken at all (its lock folder unwritable for this account)
// is a server error.
func TestGateFailure(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "locks")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, broken := NewWriteGate(notDir).Shared(context.Background(), "acme/web")
	g := NewWriteGate(filepath.Join(dir, "ok"))
	release, err := g.Exclusive(context.Background(), "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, waited := g.Shared(ctx, "acme/web")
	for _, c := range []struct {
		err  error
		line string
	}{
		{waited, "cpm: acme/web is being handed over; try again"},
		{fmt.Errorf("x: %w", context.Canceled), "cpm: acme/web is being handed over; try again"},
		{broken, "cpm: internal error; try again later"},
	} {
		if c.err == nil {
			t.Fatalf("no error for %q", c.line)
		}
		f := gateFailure("acme/web", c.err)
		if f.line != c.line || !errors.Is(f, c.err) {
			t.Errorf("%v: %q", c.err, f.line)
		}
	}
}
