package transfer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// bulkWorld is a source root with three repositories, each with a commit,
// and a copy of them as a backup's path would hold them.
func bulkWorld(t *testing.T) (*Syncer, []names.RepoPath, string) {
	t.Helper()
	root := t.TempDir()
	r := repos.Root{Dir: filepath.Join(root, "repos"), Trash: filepath.Join(root, "trash")}
	ctx := context.Background()
	var rps []names.RepoPath
	for _, name := range []string{"a", "b", "c"} {
		dir, err := r.Create(ctx, "acme", name, "")
		if err != nil {
			t.Fatal(err)
		}
		git := func(stdin string, args ...string) string {
			cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("git %v: %v", args, err)
			}
			return strings.TrimSpace(string(out))
		}
		blob := git(name, "hash-object", "-w", "--stdin")
		tree := git("100644 blob "+blob+"\tf\n", "mktree")
		commit := git("", "commit-tree", tree, "-m", name)
		git("", "update-ref", "refs/heads/main", commit)
		git("", "tag", "v1", commit)
		if name == "c" {
			git("", "pack-refs", "--all")
		}
		rps = append(rps, names.RepoPath{Org: "acme", Repo: name})
	}
	backup := filepath.Join(root, "backup")
	os.MkdirAll(backup, 0o755)
	if out, err := exec.Command("cp", "-a", filepath.Join(r.Dir, "acme"), backup).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return &Syncer{Root: r}, rps, backup
}

// answer runs the bulk state command here, as the backup would.
func answer(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", bulkStateCommand(remote.Target{Path: path})).Output()
	if err != nil {
		t.Fatalf("bulk state command: %v", err)
	}
	return string(out)
}

func readBulk(s *Syncer, rps []names.RepoPath, text string) (map[string]ReplicaState, BulkStats, error) {
	b := newBulkReader(s, remote.Target{}, rps)
	if err := b.read(strings.NewReader(text)); err != nil {
		return nil, b.stats, err
	}
	return b.result(), b.stats, nil
}

func localPrint(t *testing.T, s *Syncer, rp names.RepoPath) string {
	dir, _ := s.Root.Open(rp.Org, rp.Repo)
	snap, err := TakeSnapshot(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap.Fingerprint
}

// The answer of a backup whose replicas are exact copies settles every
// one as current; a lost object file and a moved ref show on exactly the
// replicas they happened to, a replica that is not there is absent.
func TestBulkStateJudgesEachReplica(t *testing.T) {
	s, rps, backup := bulkWorld(t)
	states, _, err := readBulk(s, rps, answer(t, backup))
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range rps {
		st := states[rp.String()]
		if st.Unjudged || !st.ObjectsOK || st.Fingerprint != localPrint(t, s, rp) {
			t.Errorf("%s: %+v, want current (fingerprint %s)", rp, st, localPrint(t, s, rp))
		}
	}

	// b loses an object file; c's main moves (packed-refs); a is gone.
	loose, _ := filepath.Glob(filepath.Join(backup, "acme/b.git/objects/??/*"))
	os.Remove(loose[0])
	packed := filepath.Join(backup, "acme/c.git/packed-refs")
	data, _ := os.ReadFile(packed)
	os.WriteFile(packed, []byte(strings.Replace(string(data), " refs/heads/main", " refs/heads/old", 1)), 0o644)
	os.RemoveAll(filepath.Join(backup, "acme/a.git"))
	states, _, err = readBulk(s, rps, answer(t, backup))
	if err != nil {
		t.Fatal(err)
	}
	if _, held := states["acme/a"]; held {
		t.Errorf("a replica that is gone is in the answer: %+v", states["acme/a"])
	}
	if st := states["acme/b"]; st.ObjectsOK || st.Fingerprint != localPrint(t, s, rps[1]) {
		t.Errorf("b, missing an object file: %+v", st)
	}
	if st := states["acme/c"]; !st.ObjectsOK || st.Fingerprint == localPrint(t, s, rps[2]) {
		t.Errorf("c, with a moved ref: %+v", st)
	}
}

// What a lying backup may answer: names of replicas it should not hold and
// paths that climb out are ignored and counted; a malformed, overlong or
// cut answer is refused whole; a symbolic loose ref leaves the replica to
// the check of its own.
func TestBulkStateHostileAnswers(t *testing.T) {
	s, rps, backup := bulkWorld(t)
	good := answer(t, backup)
	objects, refs, _ := strings.Cut(good, "#refs\n")
	for _, tc := range []struct {
		name     string
		text     string
		fails    bool
		ignored  int
		unjudged string
	}{
		{"foreign repository", objects + "12 ./evil/x.git/objects/aa/bb\n#refs\n" + refs, false, 1, ""},
		{"climbing path", "12 ./acme/a.git/objects/../../../etc/passwd\n" + objects + "#refs\n" + refs, false, 1, ""},
		{"foreign ref file", objects + "#refs\nR ./other/z.git/HEAD\nL ref: refs/heads/main\n" + refs, false, 1, ""},
		{"not a size", "x ./acme/a.git/objects/aa/bb\n" + good, true, 0, ""},
		{"overlong line", objects + "#refs\nL " + strings.Repeat("a", 5000) + "\n" + refs, true, 0, ""},
		{"cut short", objects, true, 0, ""},
		{"garbage in refs", objects + "#refs\nhello\n" + refs, true, 0, ""},
		{"symbolic loose ref", objects + "#refs\n" + strings.TrimSuffix(refs, bulkEnd+"\n") +
			"R ./acme/a.git/refs/heads/sym\nL ref: refs/heads/main\n" + bulkEnd + "\n", false, 0, "acme/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			states, stats, err := readBulk(s, rps, tc.text)
			if (err != nil) != tc.fails {
				t.Fatalf("error %v, want failure %v", err, tc.fails)
			}
			if tc.fails {
				return
			}
			if stats.Ignored != tc.ignored {
				t.Errorf("ignored %d lines, want %d", stats.Ignored, tc.ignored)
			}
			for _, rp := range rps {
				st := states[rp.String()]
				if st.Unjudged != (rp.String() == tc.unjudged) {
					t.Errorf("%s unjudged %v", rp, st.Unjudged)
				}
			}
		})
	}
}

// One replica's part of an answer is capped: past it, that replica is
// left to the check of its own, the others are judged.
func TestBulkStateCapsEachReplica(t *testing.T) {
	s, rps, backup := bulkWorld(t)
	objects, refs, _ := strings.Cut(answer(t, backup), "#refs\n")
	var b strings.Builder
	b.WriteString(objects)
	for i := 0; b.Len() < MaxStatePerReplica+1000; i++ {
		b.WriteString("7 ./acme/b.git/objects/pack/junk-" + strings.Repeat("x", 40) + "\n")
	}
	states, _, err := readBulk(s, rps, b.String()+"#refs\n"+refs)
	if err != nil {
		t.Fatal(err)
	}
	if !states["acme/b"].Unjudged || states["acme/a"].Unjudged || !states["acme/a"].ObjectsOK {
		t.Errorf("states %+v", states)
	}
}
