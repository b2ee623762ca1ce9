package repos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func root(t *testing.T) Root {
	d := t.TempDir()
	return Root{Dir: filepath.Join(d, "repos"), Trash: filepath.Join(d, "trash")}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestCreate(t *testing.T) {
	r := root(t)
	p, err := r.Create(context.Background(), "acme", "web", "The web")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(r.Dir, "acme", "web.git"); p != want {
		t.Errorf("path %s, want %s", p, want)
	}
	if got := gitOut(t, p, "symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Errorf("HEAD %s", got)
	}
	if got := gitOut(t, p, "config", "receive.fsckObjects"); got != "true" {
		t.Errorf("receive.fsckObjects %s", got)
	}
	if d, _ := os.ReadFile(filepath.Join(p, "description")); string(d) != "The web\n" {
		t.Errorf("description %q", d)
	}
	// No sample hooks from git's template.
	if entries, _ := os.ReadDir(filepath.Join(p, "hooks")); len(entries) != 0 {
		t.Errorf("hooks: %v", entries)
	}
	if _, err := r.Create(context.Background(), "acme", "web", ""); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create: %v", err)
	}
}

func TestPathRefusesEscapes(t *testing.T) {
	r := root(t)
	for _, c := range [][2]string{{"..", "x"}, {"acme", ".."}, {"acme", "../../etc"}, {"a/b", "c"}, {"", "x"}} {
		if p, err := r.Path(c[0], c[1]); err == nil {
			t.Errorf("Path(%q, %q) = %s", c[0], c[1], p)
		}
	}
}

func TestTrashAndRestore(t *testing.T) {
	r := root(t)
	ctx := context.Background()
	p, _ := r.Create(ctx, "acme", "web", "")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	dst, err := r.MoveToTrash("acme", "web", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dst, filepath.Join(r.Trash, "acme", "web.git.20260102T030405")) {
		t.Errorf("trash path %s", dst)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("still in place: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "acme")); !os.IsNotExist(err) {
		t.Errorf("empty org folder left behind: %v", err)
	}
	if err := r.Restore(dst, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if gitOut(t, p, "rev-parse", "--is-bare-repository") != "true" {
		t.Error("restore did not bring the repository back")
	}
	if dst, err := r.MoveToTrash("acme", "missing", now); err != nil || dst != "" {
		t.Errorf("trash of a missing repository: %q, %v", dst, err)
	}
}
