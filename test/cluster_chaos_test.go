package test

import (
	"fmt"
	"maps"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// chaosLease is the nodes' lease (the setting's default): failover is
// measured against it.
const chaosLease = 10 * time.Second

// failoverGoal is the promise: pushes succeed again within 15 s
// of a primary's death, with nobody acting.
const failoverGoal = 15 * time.Second

// fencedWords is what a node that lost its lease answers a push with.
const fencedWords = "cpm: this node lost its lease; try again"

// chaos is issue 23's chaos test: three nodes on one PostgreSQL behind
// HAProxy, each node reaching the database through a link the test can
// cut, clients pushing in a loop through the balancer.
type chaos struct {
	t     *testing.T
	c     *testworld.Cluster
	alice testworld.Key
	repos []string
	loop  *testworld.PushLoop
	down  map[int]bool // nodes killed or cut off: no admin command there

	failovers []time.Duration
	lost      map[string]bool // acknowledged commits found missing
	kept      map[string]bool // warned commits found only under refs/cpm/diverged
}

// TestClusterChaos kills the primary of the busiest repository mid-push,
// then cuts one node off the database, then kills random primaries
// (CPM_CHAOS_ROUNDS rounds, default 5). After every round: every push git
// reported successful is on the new primary; pushes succeeded again
// within 15 s; the victim rejoins as a replica and every copy is
// fsck-clean with the primary's refs.
func TestClusterChaos(t *testing.T) {
	rounds := 5
	if s := os.Getenv("CPM_CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("CPM_CHAOS_ROUNDS=%q: want a whole number", s)
		}
		rounds = n
	}
	ch := newChaos(t)
	ch.loop.Start()
	defer ch.loop.Stop()
	ch.waitAcked(3)

	busiest := ch.busiest()
	t.Logf("round 1: kill -9 the primary of %s, the busiest repository, mid-push", busiest)
	ch.killRound(ch.primaryIndex(busiest), busiest)

	victim := ch.primaryIndex(ch.busiest())
	t.Logf("round 2: cut node-%d off the database", victim)
	ch.cutRound(victim)

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	for r := 0; r < rounds; r++ {
		victim := ch.randomPrimary(rng)
		t.Logf("round %d (seed %d): kill -9 node-%d", r+3, seed, victim)
		ch.killRound(victim, "")
	}
	ch.report()
}

func newChaos(t *testing.T) *chaos {
	// The default backoff (up to 5 min): a node that returns is synced
	// once the primaries see its lease again, not when a backoff grown
	// while it was away runs out.
	c := testworld.NewClusterWith(t, bin.OnDatabase(pg.Database), 3, testworld.ClusterOptions{DBLinks: true,
		Flags: []string{"--lease", chaosLease.String()}})
	ch := &chaos{t: t, c: c, down: map[int]bool{}, lost: map[string]bool{}, kept: map[string]bool{}}
	ch.alice = c.Node(1).NewKey("alice")
	c.MustAdmin(1, "user", "add", "alice", "--key", ch.alice.PubPath)
	c.MustAdmin(1, "org", "create", "acme", "--owner", "alice")
	// One repository created on each node: its primary.
	for i := 1; i <= 3; i++ {
		repo := fmt.Sprintf("acme/r%d", i)
		c.MustAdmin(i, "repo", "create", repo)
		ch.repos = append(ch.repos, repo)
		if w := whereIs(t, c, 1, repo); w.Primary != c.Node(i).Name || len(w.Replicas) != 2 {
			t.Fatalf("%s: primary %q with %d replicas, want node-%d with 2", repo, w.Primary, len(w.Replicas), i)
		}
	}
	// Two pushers on acme/r1, one on each other: acme/r1 is the busiest.
	pushed := []string{ch.repos[0], ch.repos[0], ch.repos[1], ch.repos[2]}
	ch.loop = testworld.NewPushLoop(c.Balancer().Client(ch.alice), pushed, 1)
	return ch
}

// killRound kills node victim's machine: its server and every process the
// server started, with SIGKILL (while a push to busy is under way, if busy
// is named), waits for its repositories' failover, checks the
// acknowledged pushes on the new primaries, restarts the victim and
// checks every copy once it has rejoined.
func (ch *chaos) killRound(victim int, busy string) {
	ch.t.Helper()
	led := ch.primariesOf(victim)
	if busy != "" {
		waitFor(ch.t, 10*time.Second, "a push to "+busy+" under way", func() bool { return ch.loop.InFlight(busy) > 0 })
	}
	at := time.Now()
	ch.c.KillMachine(victim)
	ch.down[victim] = true
	ch.awaitFailover(victim, led, at)
	time.Sleep(2 * time.Second) // pushes go on against the new primaries
	ch.loop.Stop()
	ch.checkPrimaries()

	ch.c.StartNode(victim)
	delete(ch.down, victim)
	back := time.Now()
	ch.awaitRejoin(victim)
	ch.checkCopies()
	ch.t.Logf("node-%d rejoined and every copy checked %s after its restart (round: %s)",
		victim, time.Since(back).Round(time.Millisecond), time.Since(at).Round(time.Millisecond))
	ch.loop.Start()
}

// cutRound cuts node victim off the database: it must fence itself (no
// push accepted once its lease has run out, none of its copies changed
// after that) while its repositories fail over; then the link comes back
// and the node rejoins.
func (ch *chaos) cutRound(victim int) {
	ch.t.Helper()
	led := ch.primariesOf(victim)
	at := time.Now()
	ch.c.CutDatabase(victim)
	ch.down[victim] = true
	ch.awaitFailover(victim, led, at)

	time.Sleep(time.Until(at.Add(chaosLease + time.Second)))
	fenced := ch.refsOf(victim)
	ch.checkFencedPush(victim)
	time.Sleep(2 * time.Second)
	ch.loop.Stop()
	ch.checkPrimaries()
	if now := ch.refsOf(victim); !maps.Equal(now, fenced) {
		ch.t.Errorf("node-%d, cut off the database, changed its copies after its lease ran out:\nthen %v\nnow  %v", victim, fenced, now)
	}

	ch.c.RestoreDatabase(victim)
	delete(ch.down, victim)
	back := time.Now()
	ch.awaitRejoin(victim)
	ch.checkCopies()
	ch.t.Logf("node-%d rejoined and every copy checked %s after its link came back (round: %s)",
		victim, time.Since(back).Round(time.Millisecond), time.Since(at).Round(time.Millisecond))
	ch.loop.Start()
}

// checkFencedPush pushes straight to node victim's ssh port, past the
// balancer: the node, without its lease, must refuse with the fencing
// words.
func (ch *chaos) checkFencedPush(victim int) {
	ch.t.Helper()
	client := ch.c.Client(victim, ch.alice)
	work := ch.t.TempDir()
	client.MustGit("", "init", "-q", "-b", "main", work)
	client.Commit(work, "pushed to a fenced node")
	r := client.Git(work, "push", client.URL(ch.repos[0]), "HEAD:refs/heads/fenced")
	if r.Code == 0 || !strings.Contains(r.Stderr, fencedWords) {
		ch.t.Errorf("a push straight to node-%d, cut off the database past its lease: exit %d, want %q:\n%s",
			victim, r.Code, fencedWords, r.Stderr)
	}
}

// awaitFailover waits until every repository in led (which node victim
// was primary of) took a push again that started after at, and records
// the failover time: the end of the first such push, less at.
func (ch *chaos) awaitFailover(victim int, led []string, at time.Time) {
	ch.t.Helper()
	if len(led) == 0 {
		ch.t.Logf("node-%d led no repository", victim)
		return
	}
	var took time.Duration
	for _, repo := range led {
		var first time.Time
		waitFor(ch.t, 60*time.Second, "a successful push to "+repo+" after node-"+strconv.Itoa(victim)+" went", func() bool {
			for _, p := range ch.loop.Pushes() {
				if p.Repo == repo && p.OK && p.Start.After(at) {
					first = p.End
					return true
				}
			}
			return false
		})
		took = max(took, first.Sub(at))
	}
	ch.failovers = append(ch.failovers, took)
	ch.t.Logf("failover of %v from node-%d: pushes succeed again after %s", led, victim, took.Round(time.Millisecond))
	if took > failoverGoal {
		ch.t.Errorf("pushes to %v succeeded again only %s after node-%d went (goal %s)", led, took, victim, failoverGoal)
	}
}

// awaitRejoin waits until node victim is up again and every repository's
// replicas, the victim among them where it held a copy, hold its
// generation.
func (ch *chaos) awaitRejoin(victim int) {
	ch.t.Helper()
	name := ch.c.Node(victim).Name
	waitFor(ch.t, 60*time.Second, name+" up again", func() bool {
		for _, n := range nodeList(ch.t, ch.c, ch.admin()) {
			if n.Name == name && n.State == "up" {
				return true
			}
		}
		return false
	})
	waitFor(ch.t, 90*time.Second, "every replica current, "+name+" among them", func() bool {
		for _, repo := range ch.repos {
			w := whereIs(ch.t, ch.c, ch.admin(), repo)
			if !w.converged() || !slices.Contains(w.holders(), name) {
				return false
			}
		}
		return true
	})
}

// admin is a node that can answer admin commands: up and on the database.
func (ch *chaos) admin() int {
	for i := 1; i <= len(ch.c.Nodes); i++ {
		if !ch.down[i] {
			return i
		}
	}
	ch.t.Fatal("every node is down")
	return 0
}

// primaryIndex is the number of the node that is repo's primary.
func (ch *chaos) primaryIndex(repo string) int {
	ch.t.Helper()
	name := whereIs(ch.t, ch.c, ch.admin(), repo).Primary
	for i, nd := range ch.c.Nodes {
		if nd.Name == name {
			return i + 1
		}
	}
	ch.t.Fatalf("%s: primary %q is no node of the cluster", repo, name)
	return 0
}

// primariesOf are the repositories node i is primary of.
func (ch *chaos) primariesOf(i int) []string {
	var led []string
	for _, repo := range ch.repos {
		if ch.primaryIndex(repo) == i {
			led = append(led, repo)
		}
	}
	return led
}

// randomPrimary is a node, chosen at random, that is primary of at least
// one repository (a node that leads nothing tells little when it dies).
func (ch *chaos) randomPrimary(rng *rand.Rand) int {
	var leaders []int
	for i := 1; i <= len(ch.c.Nodes); i++ {
		if len(ch.primariesOf(i)) > 0 {
			leaders = append(leaders, i)
		}
	}
	return leaders[rng.Intn(len(leaders))]
}

// busiest is the repository with the most acknowledged pushes.
func (ch *chaos) busiest() string {
	count := map[string]int{}
	for _, p := range ch.loop.Pushes() {
		if p.OK {
			count[p.Repo]++
		}
	}
	best := ch.repos[0]
	for _, repo := range ch.repos {
		if count[repo] > count[best] {
			best = repo
		}
	}
	return best
}

// waitAcked waits until every repository took n acknowledged pushes.
func (ch *chaos) waitAcked(n int) {
	ch.t.Helper()
	waitFor(ch.t, 60*time.Second, fmt.Sprintf("%d pushes to each repository", n), func() bool {
		count := map[string]int{}
		for _, p := range ch.loop.Pushes() {
			if p.OK {
				count[p.Repo]++
			}
		}
		for _, repo := range ch.repos {
			if count[repo] < n {
				return false
			}
		}
		return true
	})
}

// refsOf is every ref of every repository copy on node i's disk.
func (ch *chaos) refsOf(i int) map[string]string {
	refs := map[string]string{}
	for _, repo := range ch.repos {
		org, name, _ := strings.Cut(repo, "/")
		dir := ch.c.Node(i).RepoDir(org, name)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		out, _ := gitOutput(dir, "show-ref")
		refs[repo] = out
	}
	return refs
}

// repoDirOn is where node name keeps repo.
func (ch *chaos) repoDirOn(name, repo string) string {
	org, r, _ := strings.Cut(repo, "/")
	for _, nd := range ch.c.Nodes {
		if nd.Name == name {
			return nd.RepoDir(org, r)
		}
	}
	ch.t.Fatalf("no node %q", name)
	return ""
}
