package test

import (
	"fmt"
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

// A merge meets the repository's own hooks exactly as a push does: a
// policy in pre-receive.d refuses it with its own words, and
// post-receive.d runs after it, with the push's input and environment.
func TestMergeRunsRepositoryHooks(t *testing.T) {
	c := newCompany(t)
	repo := c.w.RepoDir("acme", "web")
	hooks := filepath.Join(repo, "hooks")
	policy := "#!/bin/sh\nwhile read old new ref; do\n" +
		"  if [ \"$CPM_USER\" = writer ] && [ \"$ref\" = refs/heads/main ]; then echo \"policy: $CPM_USER may not update main\" >&2; exit 1; fi\n" +
		"done\n"
	marker := filepath.Join(c.w.Root, "post-receive-ran")
	record := fmt.Sprintf("#!/bin/sh\n{ cat; echo \"user=$CPM_USER key=$CPM_KEY_FINGERPRINT git_dir=$GIT_DIR\"; } > %s\n", marker)
	for name, body := range map[string]string{"pre-receive.d/10-policy": policy, "post-receive.d/10-record": record} {
		os.MkdirAll(filepath.Dir(filepath.Join(hooks, name)), 0o755)
		if err := os.WriteFile(filepath.Join(hooks, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	owner := c.clients["owner"]
	dir, _ := owner.Clone("acme/web")
	owner.MustGit(dir, "checkout", "-q", "-b", "feature")
	feature := owner.Commit(dir, "feature")
	owner.MustGit(dir, "push", "-q", "origin", "feature")
	os.Remove(marker)
	main := revParse(repo, "refs/heads/main")

	// The policy refuses the writer's push of main...
	wdir, _ := c.clients["writer"].Clone("acme/web")
	c.clients["writer"].MustGit(wdir, "checkout", "-q", "origin/feature")
	if r := c.clients["writer"].Git(wdir, "push", "origin", "HEAD:main"); r.Code == 0 || !strings.Contains(r.Stderr, "policy: writer may not update main") {
		t.Fatalf("the policy let the writer push main: %+v", r)
	}
	// ...and the same update by merge.
	r := c.clients["writer"].SSH(nil, "merge", "acme/web", "feature", "--into", "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "policy: writer may not update main") || !strings.Contains(r.Stderr, "pre-receive hook declined") {
		t.Errorf("writer's merge into main: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if got := revParse(repo, "refs/heads/main"); got != main {
		t.Fatalf("a refused merge moved main to %s", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("post-receive.d ran for a refused merge")
	}

	// The owner's merge passes the policy and runs post-receive.d.
	r = owner.SSH(nil, "merge", "acme/web", "feature", "--into", "main")
	if r.Code != 0 || revParse(repo, "refs/heads/main") != feature {
		t.Fatalf("owner's merge: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	got, err := os.ReadFile(marker)
	want := fmt.Sprintf("%s %s refs/heads/main\nuser=owner key=%s git_dir=.\n", main, feature, c.keys["owner"].Fingerprint)
	if err != nil || string(got) != want {
		t.Errorf("post-receive.d after the merge: %v\n got %q\nwant %q", err, got, want)
	}
}
