package test

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// unreplicatedWords mark a push acknowledged before any replica held it
// (no replica answered within sync_timeout, or the primary could not
// record it): the one kind of acknowledged push the old primary may take
// along when it dies, to be kept under refs/cpm/diverged when it
// returns. Every such warning of cpm's starts so.
const unreplicatedWords = "cpm: warning:"

// acked is one acknowledged push's commit.
type acked struct {
	branch, commit string
	warned         bool // the client was told it was not yet replicated
}

// ackedOf is every acknowledged push to repo, in order.
func (ch *chaos) ackedOf(repo string) []acked {
	var out []acked
	for _, p := range ch.loop.Pushes() {
		if p.Repo == repo && p.OK {
			out = append(out, acked{p.Branch, p.Commit, strings.Contains(p.Stderr, unreplicatedWords)})
		}
	}
	return out
}

// checkPrimaries checks, before the victim returns, that every repository
// has a live primary holding every acknowledged push that was replicated
// when it was acknowledged (the warned ones may be with the victim).
func (ch *chaos) checkPrimaries() {
	ch.t.Helper()
	for _, repo := range ch.repos {
		p := ch.primaryIndex(repo)
		if ch.down[p] {
			ch.t.Errorf("%s: its primary is still node-%d, which is down", repo, p)
			continue
		}
		name := ch.c.Node(p).Name
		ch.checkCopy(repo, name, ch.repoDirOn(name, repo), false)
	}
}

// checkCopies checks, once the victim rejoined and every replica is
// current, every copy of every repository: git fsck clean, the primary's
// refs exactly, every acknowledged push on its branch (a warned one may be
// under refs/cpm/diverged instead).
func (ch *chaos) checkCopies() {
	ch.t.Helper()
	for _, repo := range ch.repos {
		w := whereIs(ch.t, ch.c, ch.admin(), repo)
		want, err := gitOutput(ch.repoDirOn(w.Primary, repo), "show-ref")
		if err != nil {
			ch.t.Errorf("%s on its primary %s: show-ref: %v", repo, w.Primary, err)
			continue
		}
		for _, holder := range w.holders() {
			dir := ch.repoDirOn(holder, repo)
			if out, err := gitOutput(dir, "fsck", "--no-dangling", "--no-progress"); err != nil {
				ch.t.Errorf("%s on %s: git fsck: %v\n%s", repo, holder, err, out)
			}
			if got, _ := gitOutput(dir, "show-ref"); got != want {
				ch.t.Errorf("%s on %s: refs differ from the primary %s's:\n%s\nwant\n%s", repo, holder, w.Primary, got, want)
			}
			ch.checkCopy(repo, holder, dir, true)
		}
	}
}

// checkCopy checks that the copy in dir holds every acknowledged push to
// repo on its branch; with diverged, a warned push may be kept under
// refs/cpm/diverged instead.
func (ch *chaos) checkCopy(repo, node, dir string, diverged bool) {
	ch.t.Helper()
	reach := map[string]map[string]bool{}
	var kept map[string]bool
	for _, a := range ch.ackedOf(repo) {
		if reach[a.branch] == nil {
			reach[a.branch] = revSet(dir, "refs/heads/"+a.branch)
		}
		if reach[a.branch][a.commit] {
			continue
		}
		if a.warned && !diverged {
			continue // judged once the old primary has returned
		}
		if a.warned {
			if kept == nil {
				kept = revSet(dir, "--glob=refs/cpm/diverged/*")
			}
			if kept[a.commit] {
				ch.kept[a.commit] = true
				continue
			}
		}
		ch.lost[a.commit] = true
		ch.t.Errorf("%s on %s: acknowledged push %s to %s is missing (warned unreplicated: %v)", repo, node, a.commit, a.branch, a.warned)
	}
}

// revSet is every commit reachable from revs in the repository dir.
func revSet(dir string, revs ...string) map[string]bool {
	out, _ := gitOutput(dir, append([]string{"rev-list"}, revs...)...)
	set := map[string]bool{}
	for _, id := range strings.Fields(out) {
		set[id] = true
	}
	return set
}

// report prints the run's figures: acknowledged pushes, lost ones (must
// be 0), warned ones, and the failover times.
func (ch *chaos) report() {
	ch.t.Helper()
	pushes := ch.loop.Pushes()
	ok, warned := 0, 0
	for _, p := range pushes {
		if p.OK {
			ok++
			if strings.Contains(p.Stderr, unreplicatedWords) {
				warned++
			}
		}
	}
	line := fmt.Sprintf("chaos: %d rounds, %d pushes, %d acknowledged, %d lost, %d acknowledged unreplicated (%d of them kept under refs/cpm/diverged), failover %s",
		len(ch.failovers), len(pushes), ok, len(ch.lost), warned, len(ch.kept), durationStats(ch.failovers))
	ch.t.Log(line)
	fmt.Println(line)
	if len(ch.lost) > 0 {
		ch.t.Errorf("%d acknowledged pushes lost", len(ch.lost))
	}
}

// durationStats is "p50 X max Y" of ds.
func durationStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none measured"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %s max %s", s[(len(s)-1)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
