package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServerSideMerge(t *testing.T) {
	c := newCompany(t)
	_, backupPath := backup(t, c.w, "b1")
	owner := c.clients["owner"]
	dir, _ := owner.Clone("acme/web")
	branch := func(name, file, body string) string {
		t.Helper()
		owner.MustGit(dir, "checkout", "-q", "-B", name, "origin/main")
		os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644)
		owner.MustGit(dir, "add", ".")
		owner.MustGit(dir, "commit", "-q", "-m", name)
		owner.MustGit(dir, "push", "-q", "origin", name)
		return revParse(dir, "HEAD")
	}
	merge := func(who, src, dst string) (string, string, int) {
		r := c.clients[who].SSH(nil, "merge", "acme/web", src, "--into", dst)
		return r.Stdout, r.Stderr, r.Code
	}
	remoteMain := func() string { return revParse(c.w.RepoDir("acme", "web"), "refs/heads/main") }

	// Fast-forward.
	ff := branch("feature", "a.txt", "a\n")
	if out, errOut, code := merge("writer", "feature", "main"); code != 0 || !strings.Contains(out, "fast-forward") {
		t.Fatalf("fast-forward merge: %d %s %s", code, out, errOut)
	}
	if remoteMain() != ff {
		t.Fatalf("main at %s, want %s", remoteMain(), ff)
	}
	// Replicated like a push.
	waitFor(t, 30*time.Second, "the merge on the backup", func() bool {
		return revParse(filepath.Join(backupPath, "acme", "web.git"), "main") == ff
	})
	if out, _, code := merge("writer", "feature", "main"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("merging again: %d %s", code, out)
	}

	// A merge commit when both moved.
	owner.MustGit(dir, "fetch", "-q", "origin")
	other := branch("other", "b.txt", "b\n")
	owner.MustGit(dir, "checkout", "-q", "-B", "more", "origin/main")
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("c\n"), 0o644)
	owner.MustGit(dir, "add", ".")
	owner.MustGit(dir, "commit", "-q", "-m", "more on main")
	owner.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	before := remoteMain()
	if out, errOut, code := merge("writer", "other", "main"); code != 0 || !strings.Contains(out, "(merge)") {
		t.Fatalf("merge commit: %d %s %s", code, out, errOut)
	}
	out, _ := gitOutput(c.w.RepoDir("acme", "web"), "log", "-1", "--format=%P", "main")
	parents := strings.Fields(out)
	if len(parents) != 2 || parents[0] != before || parents[1] != other {
		t.Errorf("merge parents %v, want %s %s", parents, before, other)
	}

	// A conflict names the paths and changes nothing.
	owner.MustGit(dir, "fetch", "-q", "origin")
	branch("left", "shared.txt", "left\n")
	owner.MustGit(dir, "checkout", "-q", "-B", "right", "origin/main")
	os.WriteFile(filepath.Join(dir, "shared.txt"), []byte("right\n"), 0o644)
	owner.MustGit(dir, "add", ".")
	owner.MustGit(dir, "commit", "-q", "-m", "right")
	owner.MustGit(dir, "push", "-q", "origin", "right")
	before = revParse(c.w.RepoDir("acme", "web"), "refs/heads/right")
	_, errOut, code := merge("writer", "left", "right")
	if code == 0 || !strings.Contains(errOut, "conflict") || !strings.Contains(errOut, "shared.txt") || !strings.Contains(errOut, "nothing changed") {
		t.Errorf("conflicting merge: %d %s", code, errOut)
	}
	if revParse(c.w.RepoDir("acme", "web"), "refs/heads/right") != before {
		t.Error("a conflicting merge moved the target")
	}

	// Permissions as for a push.
	for who, want := range map[string]string{"reader": "permission denied", "dro": "permission denied", "stranger": "not found", "member": "permission denied"} {
		if _, errOut, code := merge(who, "feature", "right"); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("%s merging: %d %s (want %q)", who, code, errOut, want)
		}
	}
	if _, errOut, code := merge("writer", "nope", "main"); code == 0 || !strings.Contains(errOut, "no branch nope") {
		t.Errorf("missing branch: %d %s", code, errOut)
	}

	// Audited with who, what and old..new.
	if out := c.w.MustAdmin("audit", "--limit", "20"); !strings.Contains(out, "merge") || !strings.Contains(out, "refs/heads/other") {
		t.Errorf("audit: %s", out)
	}
}
