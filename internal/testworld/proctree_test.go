package testworld

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// killTree reaches a grandchild in a process group of its own, as cpm's
// git processes are.
func TestKillTreeKillsEveryDescendant(t *testing.T) {
	cmd := exec.Command("sh", "-c", "setsid sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var grandchild int
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			grandchild = grandchild*10 + int(c-'0')
		}
	}
	if grandchild == 0 {
		t.Fatal("no grandchild pid")
	}
	killTree(cmd.Process.Pid)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(grandchild, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(grandchild, syscall.SIGKILL)
			t.Fatalf("grandchild %d still alive", grandchild)
		}
	}
}
