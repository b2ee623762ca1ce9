package test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/store"
	"cpm/internal/testworld"
)

// TestClusterSyncPushLatency is a measurement, not a check: the median
// time of a small push to the primary of a three-node cluster with
// sync_replicas 1 (acknowledged once a replica holds it) and with
// sync_replicas 0 (only queued). Goal: at most 1.5 times the latter. It
// runs only with CPM_BENCH=1.
func TestClusterSyncPushLatency(t *testing.T) {
	if os.Getenv("CPM_BENCH") == "" {
		t.Skip("a measurement: CPM_BENCH=1 runs it")
	}
	c := testworld.NewCluster(t, bin.OnDatabase(pg.Database), 3)
	holdLeases(t, c.Database, "node-1", "node-2", "node-3")
	st := openStore(t, c.Database)
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	work := t.TempDir()
	cl := c.Client(1, alice)
	cl.MustGit("", "init", "-q", "-b", "main", work)
	cl.Commit(work, "first")
	cl.MustGit(work, "push", "-q", cl.URL("acme/web"), "HEAD:main")
	n, rounds := 15, 1
	if v := os.Getenv("CPM_BENCH_PUSHES"); v != "" {
		fmt.Sscan(v, &n)
	}
	// Rounds alternate the two settings, so that the load of a shared
	// machine weighs on both alike.
	if v := os.Getenv("CPM_BENCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	measure := func(label string, ds []time.Duration) []time.Duration {
		cl := c.Client(1, alice)
		for i := range n {
			waitIdle(t, st)
			cl.Commit(work, fmt.Sprint(label, " ", i, " ", time.Now().UnixNano()))
			start := time.Now()
			cl.MustGit(work, "push", "-q", cl.URL("acme/web"), "HEAD:main")
			ds = append(ds, time.Since(start))
		}
		return ds
	}
	var syncs, asyncs, acks []time.Duration
	fast, session := 0, 0
	ackRe := regexp.MustCompile(`"duration_ms":(\d+).*"message":"sync push"|"message":"sync push".*"duration_ms":(\d+)`)
	for r := range rounds {
		if r > 0 {
			c.RestartNode(1, "--sync-replicas", "1")
		}
		syncs = measure("sync_replicas 1", syncs)
		session += strings.Count(c.Node(1).Server.Log(), `"via":["session"]`)
		fast += strings.Count(c.Node(1).Server.Log(), `"via":["pack"]`)
		for _, m := range ackRe.FindAllStringSubmatch(c.Node(1).Server.Log(), -1) {
			ms, _ := strconv.Atoi(m[1] + m[2])
			acks = append(acks, time.Duration(ms)*time.Millisecond)
		}
		c.RestartNode(1, "--sync-replicas", "0")
		asyncs = measure("sync_replicas 0", asyncs)
		fmt.Printf("round %d: synchronous / asynchronous %.2fx\n", r+1,
			float64(median(syncs[len(syncs)-n:]))/float64(median(asyncs[len(asyncs)-n:])))
	}
	report := func(label string, ds []time.Duration) time.Duration {
		slices.Sort(ds)
		fmt.Printf("%s: median %d ms, min %d ms, max %d ms of %d pushes\n", label,
			ds[len(ds)/2].Milliseconds(), ds[0].Milliseconds(), ds[len(ds)-1].Milliseconds(), len(ds))
		return ds[len(ds)/2]
	}
	sync1, async := report("sync_replicas 1", syncs), report("sync_replicas 0", asyncs)
	report("the acknowledgement itself (sync push, node-1's log)", acks)
	fmt.Printf("written by the fast path over a replication session: %d, over an ssh session of its own: %d, of %d\n", session, fast, len(syncs))
	fmt.Printf("synchronous / asynchronous: %.2fx (goal at most 1.5x)\n", float64(sync1)/float64(async))
}

// median is the median of ds, which it leaves unsorted.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// waitIdle waits until every replication job is done: the workers'
// syncs of the last push are over, and the next push has the machine to
// itself.
func waitIdle(t *testing.T, st *store.Store) {
	t.Helper()
	waitFor(t, 60*time.Second, "the workers to finish", func() bool {
		jobs, err := st.Jobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if !j.Done() {
				return false
			}
		}
		return true
	})
}
