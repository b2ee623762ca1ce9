package peer

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// noPush runs receive-pack as a send-pack that has nothing to send would
// (a flush, no commands), noting that it ran.
func noPush(ran *bool) func(*exec.Cmd) (int, error) {
	return func(c *exec.Cmd) (int, error) {
		*ran = true
		c.Stdin, c.Stdout = strings.NewReader("0000"), io.Discard
		if err := c.Run(); err != nil {
			return 1, err
		}
		return 0, nil
	}
}

// A synchronous write is taken only from the repository's primary, under
// its epoch, with its lease, as a generation the repository reached, into
// a node that holds a replica; the replica records the generation only
// when its refs are those the primary announced. Every refusal comes
// before git runs: nothing is written.
func TestReceivePack(t *testing.T) {
	ctx := context.Background()
	rs := nodeCluster(t)
	st := rs["n1"].Store
	web := names.RepoPath{Org: "acme", Repo: "web"}
	n1, err := st.NodeByName(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkDirty(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	empty := transfer.Fingerprint(nil)
	ok := SyncWrite{Epoch: 0, Generation: 1, Fingerprint: empty}
	primary := Origin{Name: "n1", Node: true}
	refused := []struct {
		name string
		on   string
		from Origin
		repo names.RepoPath
		w    SyncWrite
		want string
	}{
		{"a node that is not the primary", "n2", Origin{Name: "n3", Node: true}, web, ok, "only its primary n1 writes"},
		{"a neighbour of the primary's name", "n2", Origin{Name: "n1"}, web, ok, "for nodes of this cluster"},
		{"the primary's own copy", "n1", Origin{Name: "n2", Node: true}, web, ok, "n1 is its primary"},
		{"a node without a replica", "n3", primary, web, ok, "n3 holds no replica"},
		{"another repository", "n2", primary, names.RepoPath{Org: "acme", Repo: "nope"}, ok, "not a repository of this cluster"},
		{"a stale epoch", "n2", primary, web, SyncWrite{Epoch: 3, Generation: 1, Fingerprint: empty}, "no longer the repository's primary"},
		{"a generation never reached", "n2", primary, web, SyncWrite{Generation: 2, Fingerprint: empty}, "the repository is at 1"},
	}
	for _, c := range refused {
		ran := false
		if _, err := rs[c.on].ReceivePack(ctx, c.from, c.repo, c.w, noPush(&ran)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if ran {
			t.Errorf("%s: git ran", c.name)
		}
	}
	if _, err := os.Stat(filepath.Join(rs["n2"].Disk.Dir, "acme")); err == nil {
		t.Error("a refused write made a folder")
	}
	held := func() int64 {
		p, err := st.Placement(ctx, "n2", "acme", "web")
		if err != nil {
			t.Fatal(err)
		}
		return p.Local
	}

	// Refs other than those announced: git ran, nothing is recorded.
	ran := false
	if _, err := rs["n2"].ReceivePack(ctx, primary, web, SyncWrite{Generation: 1, Fingerprint: strings.Repeat("0", 64)}, noPush(&ran)); err == nil || !ran {
		t.Fatalf("refs that differ: %v (ran %v)", err, ran)
	}
	if g := held(); g != -1 {
		t.Fatalf("refs that differ recorded generation %d", g)
	}
	if status, err := rs["n2"].ReceivePack(ctx, primary, web, ok, noPush(&ran)); err != nil || status != 0 {
		t.Fatalf("the primary's write: %d %v", status, err)
	}
	if g := held(); g != 1 {
		t.Fatalf("replica holds generation %d after the write, want 1", g)
	}
	// Once the primary's lease ran out it writes no more.
	if err := st.RenewLease(ctx, n1.ID, -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := rs["n2"].ReceivePack(ctx, primary, web, ok, noPush(&ran)); err == nil || !strings.Contains(err.Error(), store.ErrFenced.Error()) {
		t.Errorf("a primary without its lease: %v", err)
	}
}

// A primary that stops sending mid-write (its machine died; ssh would
// wait minutes) does not hold the replica's write, nor the repository's
// row, past the receiver's write timeout: receive-pack is killed and
// nothing is recorded.
func TestReceivePackBounded(t *testing.T) {
	ctx := context.Background()
	rs := nodeCluster(t)
	st := rs["n1"].Store
	n1, err := st.NodeByName(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkDirty(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	rs["n2"].WriteTimeout = time.Second
	silent, never, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer never.Close()
	defer silent.Close()
	stalled := func(c *exec.Cmd) (int, error) {
		c.Stdin, c.Stdout = silent, io.Discard
		if err := c.Run(); err != nil {
			return 1, err
		}
		return 0, nil
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := rs["n2"].ReceivePack(ctx, Origin{Name: "n1", Node: true}, names.RepoPath{Org: "acme", Repo: "web"},
			SyncWrite{Generation: 1, Fingerprint: transfer.Fingerprint(nil)}, stalled)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a stalled write succeeded")
		}
	case <-time.After(10 * time.Second):
		never.Close() // let it end
		<-done
		t.Fatalf("a stalled write still ran after %s", time.Since(start))
	}
	p, err := st.Placement(ctx, "n2", "acme", "web")
	if err != nil || p.Local != -1 {
		t.Fatalf("after a stalled write: holds %d, %v", p.Local, err)
	}
}
