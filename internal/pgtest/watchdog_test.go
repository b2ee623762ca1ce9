package pgtest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A test binary killed before it could call Stop (go test -timeout,
// SIGKILL) must not leave its PostgreSQL running.
func TestServerStopsWhenItsProcessDies(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN") == "1" {
		s, err := Start()
		if err != nil {
			t.Fatal(err)
		}
		// The parent reads the address, then kills us before any Stop.
		os.Stdout.WriteString("addr " + strings.Split(s.URL("x"), "@")[1] + "\n")
		time.Sleep(time.Minute)
		return
	}
	if _, err := Bin(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerStopsWhenItsProcessDies$", "-test.v=false")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	hostPort := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(line), "addr "), "/", 2)[0]
	if c, err := net.Dial("tcp", hostPort); err != nil {
		t.Fatalf("the child's server is not up at %s: %v", hostPort, err)
	} else {
		c.Close()
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", hostPort)
		if err != nil {
			return // stopped
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL at %s still runs 30 s after its test process was killed", hostPort)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
