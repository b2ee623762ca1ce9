package peer

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cpm/internal/names"
	"cpm/internal/transfer"
)

// gitIn runs git in dir and returns its trimmed output.
func gitIn(t *testing.T, dir string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// packOf is the pack pack-objects makes of revs (its --revs input) in dir.
func packOf(t *testing.T, dir, revs string, extra ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "pack-objects", "--stdout", "-q"}, extra...)...)
	cmd.Stdin = strings.NewReader(revs)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pack-objects: %v", err)
	}
	return out
}

// The fast write (cpm-peer receive-pack --pack) passes the checks of
// ReceivePack before anything is read, stores a pack only once every
// object passed fsck, moves refs only from the values the primary
// thought the replica held, and records the generation only when the
// replica then holds the announced refs.
func TestApplyPack(t *testing.T) {
	ctx := context.Background()
	rs := nodeCluster(t)
	st := rs["n1"].Store
	web := names.RepoPath{Org: "acme", Repo: "web"}
	n1, _ := st.NodeByName(ctx, "n1")
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	replica, err := rs["n2"].Disk.Create(ctx, "acme", "Web", "")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	gitIn(t, src, "", "init", "-q", "--bare")
	tree := gitIn(t, src, "", "mktree")
	a := gitIn(t, src, "", "commit-tree", "-m", "a", tree)
	b := gitIn(t, src, "", "commit-tree", "-m", "b", "-p", a, tree)
	zero := strings.Repeat("0", 40)
	primary := Origin{Name: "n1", Node: true}
	held := func() int64 {
		p, err := st.Placement(ctx, "n2", "acme", "web")
		if err != nil {
			t.Fatal(err)
		}
		return p.Local
	}
	apply := func(gen int64, fp string, updates []transfer.RefUpdate, pack []byte) error {
		if err := st.MarkDirty(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		transfer.WriteRefUpdates(&in, updates)
		in.Write(pack)
		return rs["n2"].ApplyPack(ctx, primary, web, SyncWrite{Generation: gen, Fingerprint: fp}, &in)
	}
	fpA, fpB := transfer.Fingerprint([]string{a + " refs/heads/main"}), transfer.Fingerprint([]string{b + " refs/heads/main"})
	packA := packOf(t, src, a+"\n", "--revs")

	if err := rs["n2"].ApplyPack(ctx, Origin{Name: "n3", Node: true}, web, SyncWrite{Generation: 0, Fingerprint: fpA}, strings.NewReader("")); err == nil ||
		!strings.Contains(err.Error(), "only its primary n1 writes") {
		t.Errorf("a node that is not the primary: %v", err)
	}
	if err := apply(1, fpA, []transfer.RefUpdate{{Old: zero, New: a, Name: "refs/heads/main"}}, packA); err != nil {
		t.Fatalf("the primary's write: %v", err)
	}
	if got := gitIn(t, replica, "", "rev-parse", "refs/heads/main"); got != a || held() != 1 {
		t.Fatalf("after the write main is %s at generation %d", got, held())
	}

	refused := []struct {
		name    string
		fp      string
		updates []transfer.RefUpdate
		pack    []byte
		want    string
	}{
		{"an old value the replica does not hold", fpB, []transfer.RefUpdate{{Old: b, New: b, Name: "refs/heads/main"}}, packOf(t, src, b+"\n^"+a+"\n", "--revs"), "update refs"},
		{"refs other than announced", fpA, []transfer.RefUpdate{{Old: a, New: b, Name: "refs/heads/main"}}, packOf(t, src, b+"\n^"+a+"\n", "--revs"), "differ"},
		{"a ref name that is no ref", fpB, []transfer.RefUpdate{{Old: a, New: b, Name: "refs/heads/../../config"}}, packOf(t, src, b+"\n^"+a+"\n", "--revs"), "not a ref name"},
		{"no pack", fpB, []transfer.RefUpdate{{Old: a, New: b, Name: "refs/heads/main"}}, []byte("0000"), "pack"},
		{"an object fsck refuses", fpB, []transfer.RefUpdate{{Old: a, New: b, Name: "refs/heads/main"}}, packOf(t, src, badCommit(t, src)+"\n"), "unpack-objects"},
	}
	for _, c := range refused {
		if err := apply(held()+1, c.fp, c.updates, c.pack); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if held() != 1 {
			t.Fatalf("%s: recorded generation %d", c.name, held())
		}
		// The one case that moves refs before its check fails: put them back.
		gitIn(t, replica, "", "update-ref", "refs/heads/main", a)
	}
	if err := apply(held()+6, fpB, []transfer.RefUpdate{{Old: a, New: b, Name: "refs/heads/main"}}, packOf(t, src, b+"\n^"+a+"\n", "--revs")); err != nil {
		t.Fatalf("the next write: %v", err)
	}
	if got := gitIn(t, replica, "", "rev-parse", "refs/heads/main"); got != b || held() != 7 {
		t.Fatalf("after the next write main is %s at generation %d", got, held())
	}
	if out := gitIn(t, replica, "", "fsck", "--strict"); strings.Contains(out, "missing") {
		t.Errorf("fsck: %s", out)
	}
}

// badCommit writes a commit object without a tree into dir.
func badCommit(t *testing.T, dir string) string {
	return gitIn(t, dir, "author t <t@example.org> 0 +0000\n\nno tree\n", "hash-object", "--literally", "-t", "commit", "-w", "--stdin")
}
