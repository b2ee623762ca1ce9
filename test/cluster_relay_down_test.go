package test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterRelayToAPrimaryThatIsDown: with the repository's primary
// stopped, a session that goes there through the other node gets cpm's
// one line and nothing of ssh's (no internal address, no "Connection
// refused"), for a read and for a push; the node that relayed logs why.
func TestClusterRelayToAPrimaryThatIsDown(t *testing.T) {
	p := newPairWithWeb(t)
	n1, n2, database, via2 := p.n1, p.n2, p.database, p.via2
	lag(t, database, "n2", "acme", "web") // a read through n2 goes to n1
	n1.srv.Stop()

	const want = "cpm: acme/web: its primary node is unreachable; try again later\n"
	for _, command := range []string{"git-upload-pack acme/web", "git-receive-pack acme/web"} {
		r := via2.SSH(nil, command)
		if r.Code == 0 || r.Stderr != want {
			t.Errorf("%s through n2, n1 down: exit %d, stderr %q, want %q", command, r.Code, r.Stderr, want)
		}
	}
	if log := n2.srv.Log(); !strings.Contains(log, "Connection refused") {
		t.Errorf("n2's log does not say why the relay failed:\n%s", log)
	}
}

// TestClusterRelayedReadCutShort: a client that goes away during a read
// relayed to the primary ends its session on the relaying node with a
// status git could give (not -1, a killed ssh's).
func TestClusterRelayedReadCutShort(t *testing.T) {
	p := newPairWithWeb(t)
	n2, database, via2 := p.n2, p.database, p.via2
	lag(t, database, "n2", "acme", "web")

	// upload-pack waits for the client's wants: the session is open on
	// both nodes until the client is killed.
	host, port, _ := net.SplitHostPort(n2.addr)
	cmd := exec.Command("ssh", append(append(via2.SSHArgs(), "-p", port), "git@"+host, "git-upload-pack acme/web")...)
	cmd.Env = testworld.Env()
	in, _ := cmd.StdinPipe()
	defer in.Close()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Read(make([]byte, 4)); err != nil { // the primary's advertisement has begun
		t.Fatalf("no answer through n2: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, 20*time.Second, "n2's session event", func() bool { return sessionStatus(n2, "git-upload-pack") != "" })
	if got := sessionStatus(n2, "git-upload-pack"); got == "-1" {
		t.Errorf("the cut-short relayed read ended with status %s on n2:\n%s", got, n2.srv.Log())
	}
}

// sessionStatus is the status of the last session event of command that
// node n logged for its own client (not one relayed to it), "" if none.
func sessionStatus(n *clusterNode, command string) string {
	status := ""
	for _, l := range strings.Split(n.srv.Log(), "\n") {
		if strings.Contains(l, `"message":"session"`) && strings.Contains(l, `"command":"`+command+`"`) &&
			!strings.Contains(l, `"via":`) {
			if _, rest, ok := strings.Cut(l, `"status":`); ok {
				status, _, _ = strings.Cut(rest, ",")
			}
		}
	}
	return status
}
