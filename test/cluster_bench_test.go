package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// benchCluster is a three-node cluster measured by TestClusterBenchmark,
// each node's server confined to the cgroup bench/cluster.sh made for it.
type benchCluster struct {
	t      *testing.T
	c      *testworld.Cluster
	client []*testworld.Client // index 0: the balancer, i: node i
	work   string
}

// confine moves every node's server into CPM_BENCH_CGROUPS/node-i (a
// cgroup with its CPU share); the git processes it starts inherit it.
func (b *benchCluster) confine() {
	base := os.Getenv("CPM_BENCH_CGROUPS")
	if base == "" {
		return
	}
	for i, nd := range b.c.Nodes {
		procs := filepath.Join(base, fmt.Sprintf("node-%d", i+1), "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(nd.Server.Pid())), 0o644); err != nil {
			b.t.Fatalf("confine %s: %v", nd.Name, err)
		}
	}
}

// push commits in the work tree and pushes it through client; it returns
// how long the push took.
func (b *benchCluster) push(client *testworld.Client, repo string) time.Duration {
	client.Commit(b.work, fmt.Sprint("bench ", time.Now().UnixNano()))
	start := time.Now()
	if r := client.Git(b.work, "push", "-q", client.URL(repo), "HEAD:main"); r.Code != 0 {
		b.t.Fatalf("push through %s: %s", client.URL(repo), r.Stderr)
	}
	return time.Since(start)
}

// converge waits until every replica of repo holds its generation and
// returns how long that took.
func (b *benchCluster) converge(repo string) time.Duration {
	start := time.Now()
	waitFor(b.t, 2*time.Minute, "the replicas of "+repo, func() bool { return whereIs(b.t, b.c, 1, repo).converged() })
	return time.Since(start)
}

func (b *benchCluster) clone(client *testworld.Client, repo string) (time.Duration, bool) {
	dir := filepath.Join(b.work+"-clones", strconv.FormatInt(cloneCount.Add(1), 10))
	start := time.Now()
	r := client.Git("", "clone", "-q", "--bare", client.URL(repo), dir)
	d := time.Since(start)
	os.RemoveAll(dir)
	return d, r.Code == 0
}

// cloneCount names each clone's directory.
var cloneCount atomic.Int64

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestClusterBenchmark is bench/cluster.sh's measurement, not a check; it
// runs only with CPM_BENCH=1. Lines starting "cluster:" are the figures.
func TestClusterBenchmark(t *testing.T) {
	if os.Getenv("CPM_BENCH") == "" {
		t.Skip("a benchmark: bench/cluster.sh runs it")
	}
	c := testworld.NewCluster(t, bin.OnDatabase(pg.Database), 3)
	b := &benchCluster{t: t, c: c, work: filepath.Join(t.TempDir(), "work")}
	b.confine()
	alice := c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	c.MustAdmin(1, "repo", "create", "acme/web")
	b.client = []*testworld.Client{c.Balancer().Client(alice)}
	for i := 1; i <= 3; i++ {
		b.client = append(b.client, c.Client(i, alice))
	}
	os.MkdirAll(b.work+"-clones", 0o755)
	b.client[1].MustGit("", "init", "-q", "-b", "main", b.work)
	for range 10 {
		b.push(b.client[1], "acme/web")
	}
	b.converge("acme/web")

	var current []time.Duration
	for range 11 {
		d, _ := b.clone(b.client[3], "acme/web")
		current = append(current, d)
	}
	var direct, forwarded []time.Duration
	for range 15 {
		direct = append(direct, b.push(b.client[1], "acme/web"))
		b.converge("acme/web")
		forwarded = append(forwarded, b.push(b.client[2], "acme/web"))
		b.converge("acme/web")
	}
	fmt.Printf("cluster: push direct to the primary: %.0f ms median of 15\n", ms(quantile(direct, 0.5)))
	fmt.Printf("cluster: push through another node: %.0f ms median of 15\n", ms(quantile(forwarded, 0.5)))
	fmt.Printf("cluster: forwarded - direct: %+.0f ms (goal <= +150 ms)\n", ms(quantile(forwarded, 0.5)-quantile(direct, 0.5)))

	var lags []time.Duration
	for i := range 100 {
		b.push(b.client[1+i%3], "acme/web")
		lags = append(lags, b.converge("acme/web"))
	}
	fmt.Printf("cluster: replica lag after a push returns, 100 pushes: p50 %.0f ms, p99 %.0f ms (polling repo where)\n",
		ms(quantile(lags, 0.5)), ms(quantile(lags, 0.99)))

	rates := b.clonesPerSecond("acme/web")
	for n, r := range rates {
		fmt.Printf("cluster: clones per second through HAProxy, %d node(s): %.1f (%.2fx one node)\n", n+1, r, r/rates[0])
	}
	fmt.Printf("cluster: 3 nodes / 1 node: %.2fx (goal >= 2.5x)\n", rates[2]/rates[0])

	lagging := b.laggingClones("acme/web")
	fmt.Printf("cluster: clone from a current replica: %.0f ms median of 11\n", ms(quantile(current, 0.5)))
	fmt.Printf("cluster: clone from a lagging replica (through the primary): %.0f ms median of %d\n", ms(quantile(lagging, 0.5)), len(lagging))
}

// clonesPerSecond: concurrent clients clone repo through the balancer
// for a fixed time with 1, 2 and 3 nodes in its rotation.
func (b *benchCluster) clonesPerSecond(repo string) []float64 {
	clients, _ := strconv.Atoi(os.Getenv("CPM_BENCH_CLIENTS"))
	if clients <= 0 {
		clients = 9
	}
	seconds, _ := strconv.Atoi(os.Getenv("CPM_BENCH_SECONDS"))
	if seconds <= 0 {
		seconds = 15
	}
	lb := b.c.Balancer()
	var rates []float64
	for n := 1; n <= 3; n++ {
		for i, nd := range b.c.Nodes {
			if err := lb.SetNode(nd.Name, i < n); err != nil {
				b.t.Fatal(err)
			}
		}
		lb.WaitUp(n)
		var done, failed atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(time.Duration(seconds) * time.Second)
		for range clients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if _, ok := b.clone(b.client[0], repo); ok {
						done.Add(1)
					} else {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			fmt.Printf("cluster: %d node(s): %d clones failed\n", n, failed.Load())
		}
		rates = append(rates, float64(done.Load())/float64(seconds))
	}
	return rates
}

// laggingClones times clones from node 3 made right after a push to the
// primary, keeping those during which `repo where` says node 3's replica
// lagged from before the clone started until after it ended: those were
// served through the primary.
func (b *benchCluster) laggingClones(repo string) []time.Duration {
	lagging := func() bool {
		w := whereIs(b.t, b.c, 1, repo)
		for _, r := range w.Replicas {
			if r.Node == "node-3" {
				return r.Generation < w.Generation
			}
		}
		return false
	}
	var ds []time.Duration
	for range 30 {
		b.push(b.client[1], repo)
		if !lagging() {
			continue
		}
		d, ok := b.clone(b.client[3], repo)
		if ok && lagging() {
			ds = append(ds, d)
		}
		b.converge(repo)
	}
	if len(ds) == 0 {
		b.t.Fatal("no clone from node 3 happened while its replica lagged")
	}
	return ds
}
