package test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestStartupFlood: one address holding idle connections takes only its
// own share of the unauthenticated slots (100 by default); the rest are
// closed at once rather than held, and a client from another address
// logs in at once: the idle ones hold up no one else's handshake.
func TestStartupFlood(t *testing.T) {
	w := testworld.New(t, bin)
	k := w.NewKey("alice")
	w.MustAdmin("user", "add", "alice", "--key", k.PubPath)
	srv := w.StartServer()

	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", srv.SSHAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// A dropped connection reads EOF (or a reset) at once; a held one
	// reads the version line and then nothing until its deadline here.
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := 0
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(deadline)
			buf := make([]byte, 256)
			for {
				if _, err := c.Read(buf); err != nil {
					if os.IsTimeout(err) {
						mu.Lock()
						held++
						mu.Unlock()
					}
					return
				}
			}
		}()
	}

	start := time.Now()
	r := srv.Client(k).SSH([]string{"-n", "-b", "127.0.0.2"}, "whoami")
	took := time.Since(start)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "alice" {
		t.Errorf("whoami from 127.0.0.2 during the flood: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("whoami from 127.0.0.2 beside 200 idle sockets from 127.0.0.1: %s", took.Round(time.Millisecond))
	// About 70 ms on a quiet machine. 500 ms also catches the server
	// waiting on an idle client's hello under gliderlabs' lock (1 s).
	if took > 500*time.Millisecond {
		t.Errorf("whoami from 127.0.0.2 took %s beside the flood", took)
	}
	wg.Wait()
	if held > 100 {
		t.Errorf("%d of 200 idle connections from one address held; want at most 100, the rest closed at once", held)
	}
	if m := metricsText(t, srv.MetricsAddr); !strings.Contains(m, `cpm_ssh_startups_dropped_total{reason="per-source limit"} `+strconv.Itoa(200-held)) {
		t.Errorf("metrics do not count the %d dropped connections:\n%s", 200-held, grepLines(m, "dropped"))
	}
}
