package merge

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// repo builds a bare repository whose branches hold the given files,
// each branch one commit on top of a common base.
func repo(t *testing.T, branches map[string]map[string]string) string {
	t.Helper()
	root := t.TempDir()
	work, bare := filepath.Join(root, "w"), filepath.Join(root, "r.git")
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run(root, "init", "-q", "-b", "main", work)
	os.WriteFile(filepath.Join(work, "shared"), []byte("base\n"), 0o644)
	run(work, "add", ".")
	run(work, "commit", "-q", "-m", "base")
	for b, files := range branches {
		run(work, "checkout", "-q", "-B", b, "main")
		for f, body := range files {
			os.WriteFile(filepath.Join(work, f), []byte(body), 0o644)
		}
		run(work, "add", ".")
		run(work, "commit", "-q", "--allow-empty", "-m", b)
	}
	run(root, "clone", "-q", "--bare", work, bare)
	return bare
}

func revParse(t *testing.T, dir, rev string) string {
	out, _ := exec.Command("git", "-C", dir, "rev-parse", rev).Output()
	return strings.TrimSpace(string(out))
}

var who = Committer{Name: "alice", Email: "alice@cpm"}

func TestMerge(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		branches map[string]map[string]string
		source   string
		want     Kind
	}{
		{"source already in target", map[string]map[string]string{"topic": {"a": "1\n"}}, "refs/heads/main", UpToDate},
		{"target behind source", map[string]map[string]string{"topic": {"a": "1\n"}}, "refs/heads/topic", FastForward},
		{"both moved, different files", map[string]map[string]string{"topic": {"a": "1\n"}, "other": {"b": "2\n"}}, "refs/heads/other", Commit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := repo(t, tt.branches)
			target := "refs/heads/main"
			if tt.want == Commit {
				target = "refs/heads/topic"
			}
			before := revParse(t, dir, target)
			p, err := Make(ctx, dir, tt.source, target, who)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tt.want {
				t.Fatalf("kind %s, want %s", p.Kind, tt.want)
			}
			if revParse(t, dir, target) != before {
				t.Fatal("planning moved the target")
			}
			if err := Apply(ctx, dir, p, "test"); err != nil {
				t.Fatal(err)
			}
			if got := revParse(t, dir, target); got != p.New {
				t.Fatalf("target at %s, want %s", got, p.New)
			}
			if tt.want == Commit {
				parents := strings.Fields(revParse(t, dir, target+"^@"))
				if !reflect.DeepEqual(parents, []string{before, p.Merged}) {
					t.Errorf("parents %v, want %v %v", parents, before, p.Merged)
				}
				for _, f := range []string{"a", "b", "shared"} {
					if revParse(t, dir, target+":"+f) == "" {
						t.Errorf("merge lacks %s", f)
					}
				}
				if author, _ := exec.Command("git", "-C", dir, "log", "-1", "--format=%an <%ae>", target).Output(); strings.TrimSpace(string(author)) != "alice <alice@cpm>" {
					t.Errorf("author %q", author)
				}
			}
		})
	}
}

func TestMergeConflictChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := repo(t, map[string]map[string]string{
		"topic": {"shared": "topic\n", "x y": "1\n"},
		"other": {"shared": "other\n", "x y": "2\n", "fine": "ok\n"},
	})
	before := revParse(t, dir, "refs/heads/topic")
	_, err := Make(ctx, dir, "refs/heads/other", "refs/heads/topic", who)
	var ce *ConflictError
	if !errors.As(err, &ce) || !reflect.DeepEqual(ce.Paths, []string{"shared", "x y"}) {
		t.Fatalf("err %v, want a conflict in shared and 'x y'", err)
	}
	if revParse(t, dir, "refs/heads/topic") != before {
		t.Error("a conflicting merge moved the target")
	}
}

func TestMergeRefusesMissingBranchesAndMovedTargets(t *testing.T) {
	ctx := context.Background()
	dir := repo(t, map[string]map[string]string{"topic": {"a": "1\n"}})
	if _, err := Make(ctx, dir, "refs/heads/nope", "refs/heads/main", who); err == nil || !strings.Contains(err.Error(), "no branch nope") {
		t.Errorf("missing source: %v", err)
	}
	p, err := Make(ctx, dir, "refs/heads/topic", "refs/heads/main", who)
	if err != nil {
		t.Fatal(err)
	}
	// Someone pushes to main in between.
	exec.Command("git", "-C", dir, "update-ref", "refs/heads/main", revParse(t, dir, "refs/heads/main")+"~0").Run()
	p.Old = strings.Repeat("0", 39) + "1"
	if err := Apply(ctx, dir, p, "test"); !errors.Is(err, ErrMoved) {
		t.Errorf("apply over a moved target: %v", err)
	}
}
