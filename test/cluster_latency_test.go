package test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestClusterRelayLatency is a measurement, not a check (bench/cluster.sh
// has the benchmark of record): the median time of a push straight to
// the primary and of one through the other node (relayed), and of a
// clone through the replica while it is current (local) and while it
// lags (relayed). It runs only with CPM_BENCH=1.
func TestClusterRelayLatency(t *testing.T) {
	if os.Getenv("CPM_BENCH") == "" {
		t.Skip("a measurement: CPM_BENCH=1 runs it")
	}
	p := newPairWithWeb(t)
	n1, n2, database, via1, via2 := p.n1, p.n2, p.database, p.via1, p.via2
	primary, replica := n1.RepoDir("acme", "web"), n2.RepoDir("acme", "web")
	follow := func() {
		waitFor(t, 30*time.Second, "n2 to follow", func() bool { return revParse(replica, "main") == revParse(primary, "main") })
		time.Sleep(300 * time.Millisecond) // the job's generation is recorded just after the refs
	}
	median := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
	push := func(cl *testworld.Client) time.Duration {
		dir, _ := cl.Clone("acme/web")
		var ds []time.Duration
		for i := range 9 {
			cl.Commit(dir, fmt.Sprint("push ", i, " ", time.Now().UnixNano()))
			start := time.Now()
			cl.MustGit(dir, "push", "-q", "origin", "HEAD:main")
			ds = append(ds, time.Since(start))
			follow()
		}
		return median(ds)
	}
	clone := func(lagging bool) time.Duration {
		var ds []time.Duration
		for range 9 {
			follow()
			if lagging {
				lag(t, database, "n2", "acme", "web")
			}
			start := time.Now()
			_, r := via2.Clone("acme/web")
			ds = append(ds, time.Since(start))
			if r.Code != 0 {
				t.Fatalf("clone: %s", r.Stderr)
			}
		}
		return median(ds)
	}
	direct, relayed := push(via1), push(via2)
	local, fromPrimary := clone(false), clone(true)
	fmt.Printf("push to the primary: %d ms median of 9\npush through the other node (relayed): %d ms median of 9\nrelayed - direct: %d ms\n",
		direct.Milliseconds(), relayed.Milliseconds(), (relayed - direct).Milliseconds())
	fmt.Printf("clone through a current replica: %d ms median of 9\nclone through a lagging replica (relayed): %d ms median of 9\n",
		local.Milliseconds(), fromPrimary.Milliseconds())
}
