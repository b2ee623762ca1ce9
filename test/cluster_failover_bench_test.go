package test

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestFailoverBenchmark is bench/failover.sh's measurement, not a check;
// it runs only with CPM_BENCH=1. Lines starting "failover:" are the
// figures: the failover time over CPM_BENCH_KILLS (10) kills of a random
// primary under the chaos test's push loop (each round checked as in
// TestClusterChaos), then the latency of a small push straight to its
// primary with sync_replicas 1 and 0, in CPM_BENCH_ROUNDS (3) rounds of
// 5 pushes with each setting.
func TestFailoverBenchmark(t *testing.T) {
	if os.Getenv("CPM_BENCH") == "" {
		t.Skip("a benchmark: bench/failover.sh runs it")
	}
	kills := 10
	if n, err := strconv.Atoi(os.Getenv("CPM_BENCH_KILLS")); err == nil && n > 0 {
		kills = n
	}
	ch := newChaos(t)
	ch.loop.Start()
	ch.waitAcked(3)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	for k := 0; k < kills; k++ {
		ch.killRound(ch.randomPrimary(rng), "")
	}
	ch.loop.Stop()
	ch.report()
	fmt.Printf("failover: %d kills (seed %d): pushes succeed again after %s (goal max <= %s)\n",
		kills, seed, durationStats(ch.failovers), failoverGoal)

	// Rounds alternate the two settings, so that the load of a shared
	// machine weighs on both alike.
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("CPM_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	var sync1, sync0 []time.Duration
	for r := range rounds {
		if r > 0 {
			ch.setSyncReplicas("1")
		}
		one := ch.pushLatencies(5)
		ch.setSyncReplicas("0")
		zero := ch.pushLatencies(5)
		fmt.Printf("failover: round %d: sync_replicas 1 / 0: %.0f / %.0f ms, %.2fx\n", r+1,
			ms(quantile(one, 0.5)), ms(quantile(zero, 0.5)), float64(quantile(one, 0.5))/float64(quantile(zero, 0.5)))
		sync1, sync0 = append(sync1, one...), append(sync0, zero...)
	}
	m1, m0 := quantile(sync1, 0.5), quantile(sync0, 0.5)
	fmt.Printf("failover: small push straight to the primary, sync_replicas 1: %.0f ms median of %d\n", ms(m1), len(sync1))
	fmt.Printf("failover: small push straight to the primary, sync_replicas 0: %.0f ms median of %d\n", ms(m0), len(sync0))
	fmt.Printf("failover: sync_replicas 1 / 0: %.2fx (goal <= 1.5x)\n", float64(m1)/float64(m0))
}

// pushLatencies times n one-commit pushes straight to acme/r1's primary
// (past the balancer), each once every replica holds the one before, so
// that no replication of the previous push competes with it. One push
// more goes first, untimed: right after a restart the primary knows
// nothing of its replicas and its first write to each negotiates
// (send-pack), once, whichever setting.
func (ch *chaos) pushLatencies(n int) []time.Duration {
	ch.t.Helper()
	repo := ch.repos[0]
	client := ch.c.Client(ch.primaryIndex(repo), ch.alice)
	work := ch.t.TempDir()
	client.MustGit("", "init", "-q", "-b", "main", work)
	var ds []time.Duration
	for i := -1; i < n; i++ {
		client.Commit(work, fmt.Sprintf("latency %d %d", i, time.Now().UnixNano()))
		start := time.Now()
		if r := client.Git(work, "push", "-q", "--force", client.URL(repo), "HEAD:refs/heads/latency"); r.Code != 0 {
			ch.t.Fatalf("push to %s: %s", client.URL(repo), r.Stderr)
		}
		if i >= 0 {
			ds = append(ds, time.Since(start))
		}
		waitFor(ch.t, time.Minute, "the replicas of "+repo, func() bool {
			return whereIs(ch.t, ch.c, ch.admin(), repo).converged()
		})
	}
	return ds
}

// setSyncReplicas restarts every node with the setting sync_replicas n
// and waits until they are all up and seen by the balancer.
func (ch *chaos) setSyncReplicas(n string) {
	ch.t.Helper()
	for i := 1; i <= len(ch.c.Nodes); i++ {
		ch.c.RestartNode(i, "--sync-replicas", n)
	}
	ch.c.WaitUp()
	ch.c.Balancer().WaitUp(len(ch.c.Nodes))
}
