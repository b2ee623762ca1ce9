package transfer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/remote"
)

// A batch's replicas are verified from one read of their ref files: a
// replica whose refs differ from its snapshot after the run is caught, a
// symbolic ref is left to git, and an answer that is not one settles
// nothing.
func TestVerifyBatchRefs(t *testing.T) {
	s, rps, backup := bulkWorld(t)
	tgt := remote.Target{Path: backup}
	fresh := func() []*batchEntry {
		var es []*batchEntry
		for _, rp := range rps {
			dir, _ := s.Root.Open(rp.Org, rp.Repo)
			snap, err := TakeSnapshot(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, &batchEntry{BatchItem: &BatchItem{Repo: rp}, snap: snap})
		}
		return es
	}
	run := func(es []*batchEntry) []byte {
		var rels []string
		for _, e := range es {
			rels = append(rels, e.rel())
		}
		out, err := exec.Command("sh", "-c", verifyRefsCommand(tgt, rels)).Output()
		if err != nil {
			t.Fatalf("verify command: %v", err)
		}
		return out
	}
	es := fresh()
	for _, e := range es { // as the batch's last run leaves them
		os.RemoveAll(filepath.Join(backup, e.rel(), "refs"))
		if err := e.snap.write(filepath.Join(backup, e.rel())); err != nil {
			t.Fatal(err)
		}
	}
	if un := judgeRefs(tgt, es, rps, run(es)); len(un) != 0 {
		t.Fatalf("unsettled: %d", len(un))
	}
	for _, e := range es {
		if e.failed {
			t.Errorf("%s failed: %v", e.Repo, e.Err)
		}
	}

	// After the run, a's replica has a ref of its own, b's main moved
	// in a loose file over the packed one, and c has a symbolic ref.
	other := strings.Repeat("e", 40)
	os.WriteFile(filepath.Join(backup, "acme/a.git/refs/heads/extra"), []byte(other+"\n"), 0o644)
	os.WriteFile(filepath.Join(backup, "acme/b.git/refs/heads/main"), []byte(other+"\n"), 0o644)
	os.WriteFile(filepath.Join(backup, "acme/c.git/refs/heads/sym"), []byte("ref: refs/heads/main\n"), 0o644)
	es = fresh()
	un := judgeRefs(tgt, es, rps, run(es))
	for _, e := range es[:2] {
		if !errors.Is(e.Err, ErrMismatch) {
			t.Errorf("%s: %v, want a mismatch", e.Repo, e.Err)
		}
	}
	if len(un) != 1 || un[0] != es[2] || es[2].failed {
		t.Errorf("the symbolic ref: unsettled %d, failed %v", len(un), es[2].failed)
	}

	for _, bad := range []string{"#refs\nhello\n#end\n", "#refs\nR ./acme/a.git/HEAD\n", ""} {
		es = fresh()
		if un := judgeRefs(tgt, es, rps, []byte(bad)); len(un) != len(es) {
			t.Errorf("%q settled %d replicas", bad, len(es)-len(un))
		}
	}
	os.RemoveAll(filepath.Join(backup, "acme/a.git/refs"))
	if err := exec.Command("sh", "-c", verifyRefsCommand(tgt, []string{"acme/a.git"})).Run(); err == nil {
		t.Error("a replica without its refs folder was answered for")
	}
}
