package transfer

import (
	"strings"
	"testing"

	"cpm/internal/names"
	"cpm/internal/remote"
)

func batchOf(repos ...string) []*batchEntry {
	var out []*batchEntry
	for _, r := range repos {
		org, repo, _ := strings.Cut(r, "/")
		out = append(out, &batchEntry{BatchItem: &BatchItem{Repo: names.RepoPath{Org: org, Repo: repo}}})
	}
	return out
}

// rsync's per-file errors fail the repositories they name and no other;
// a line that names none (a lost connection, a repository's name inside
// another's) leaves the whole run failed.
func TestPinFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stderr string
		pinned bool
		failed []int
	}{
		{"one file", "could not make way for new regular file: acme/b.git/objects/ea/62a0\nrsync error: some files/attrs were not transferred (see previous errors) (code 23)\n", true, []int{1}},
		{"quoted, absolute", `rsync: [sender] send_files failed to open "/data/repos/acme/a.git/objects/pack/x.pack": Permission denied (13)` + "\n", true, []int{0}},
		{"two repositories", "file has vanished: \"/d/acme/a.git/objects/1\"\nfile has vanished: \"/d/acme/c.git/objects/2\"\n", true, []int{0, 2}},
		{"a name inside another", "could not make way for new regular file: xacme/b.git/objects/1\n", false, nil},
		{"connection", "client_loop: send disconnect: Broken pipe\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n", false, nil},
		{"nothing said", "rsync error: some files/attrs were not transferred (code 23)\n", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := batchOf("acme/a", "acme/b", "acme/c")
			got := pinFailures(live, &remote.Error{Op: "rsync to b1", Code: 23, Stderr: tc.stderr})
			if got != tc.pinned {
				t.Fatalf("pinned %v, want %v", got, tc.pinned)
			}
			want := map[int]bool{}
			for _, i := range tc.failed {
				want[i] = true
			}
			for i, e := range live {
				if tc.pinned && e.failed != want[i] {
					t.Errorf("%s failed %v", e.rel(), e.failed)
				}
			}
		})
	}
}

// The refs a backup reads back are its word: an answer for a repository
// not in the batch, or a line that is not a ref, refuses the whole answer;
// a failed show-ref leaves that repository unverified.
func TestParseShowRefs(t *testing.T) {
	id := strings.Repeat("a", 40)
	want := map[string]*batchEntry{"acme/a.git": {}, "acme/b.git": {}}
	good := "R acme/a.git\n" + id + " HEAD\n" + id + " refs/heads/main\nE 0\nR acme/b.git\nE 128\n"
	got, err := parseShowRefs(good, want)
	if err != nil || len(got["acme/a.git"]) != 2 {
		t.Fatalf("%v %v", got, err)
	}
	if _, ok := got["acme/b.git"]; ok {
		t.Error("a repository whose show-ref failed counts as verified")
	}
	for _, bad := range []string{
		"R acme/evil.git\nE 0\n",
		"R acme/a.git\nnot a ref\nE 0\n",
		"R acme/a.git\n" + id + " ../../etc\nE 0\n",
		"hello\n",
	} {
		if _, err := parseShowRefs(bad, want); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
