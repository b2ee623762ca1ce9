package gateway

import (
	"testing"

	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/store"
)

// A session another node relayed here is served only where it may be
// now: a write on the primary, a read on the primary or a current copy.
func TestPlaceHere(t *testing.T) {
	repo := names.RepoPath{Org: "acme", Repo: "web"}
	push := command.Command{Verb: command.ReceivePack, Repo: repo}
	fetch := command.Command{Verb: command.UploadPack, Repo: repo}
	onN1 := store.Server{ID: 1, Name: "n1"}
	current := store.Placement{Primary: onN1, Generation: 5, Local: 5, Epoch: 2}
	noCopy := store.Placement{Primary: onN1, Generation: 5, Local: -1, Epoch: 2}
	for _, c := range []struct {
		name string
		cmd  command.Command
		p    store.Placement
		self string
		ok   bool
	}{
		{"push on the primary", push, current, "n1", true},
		{"push on a node that lost the primary", push, current, "n2", false},
		{"fetch on a current copy", fetch, current, "n2", true},
		{"fetch on an old primary that holds nothing yet", fetch, noCopy, "n2", false},
		{"outside a cluster", push, store.Placement{Generation: 5, Local: 5}, "n2", true},
	} {
		err := placeHere(c.cmd, c.p, c.self, "acme/web")
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if err != nil && (clientLine(err) != "cpm: acme/web: this node is no longer the repository's primary; try again" || !Retryable(err)) {
			t.Errorf("%s: %q", c.name, clientLine(err))
		}
	}
	if got := epochEnv(current); got != "CPM_EPOCH=2" {
		t.Errorf("epoch variable %q", got)
	}
	if got := epochEnv(store.Placement{}); got != "" {
		t.Errorf("epoch variable outside a cluster %q", got)
	}
}

type fence bool

func (f fence) Held() bool { return bool(f) }

// While the lease does not hold, every user session is refused with
// cpm's words and counted; a gateway without a fence is never fenced.
func TestFenced(t *testing.T) {
	fenced := 0
	g := &Gateway{Fence: fence(false), Metrics: &Metrics{Fenced: func() { fenced++ }}}
	if err := g.fenced(); err == nil || clientLine(err) != "cpm: this node lost its lease; try again" || !Retryable(err) || fenced != 1 {
		t.Errorf("lease lost: %v, counted %d", err, fenced)
	}
	g.Fence = fence(true)
	if err := g.fenced(); err != nil {
		t.Errorf("lease held: %v", err)
	}
	if err := (&Gateway{}).fenced(); err != nil {
		t.Errorf("outside a cluster: %v", err)
	}
}
