package test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var fingerprintRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// heldRow is the row of repo in `repo list --on server --json`, or nil.
func heldRow(rows []map[string]any, repo string) map[string]any {
	for _, r := range rows {
		if r["repo"] == repo {
			return r
		}
	}
	return nil
}

// TestRepoListOnBackupAndRestore lists what a real backup holds, and
// restores from it a repository this node lost.
func TestRepoListOnBackupAndRestore(t *testing.T) {
	c := newCompany(t)
	_, path := backup(t, c.w, "b1")
	for _, repo := range []string{"acme/web", "acme/pub"} {
		c.w.MustAdmin("sync", "push", repo, "--to", "b1")
		waitFor(t, 20*time.Second, repo+" done on b1", func() bool {
			j := jobOf(t, c, repo, "b1")
			return j != nil && j["state"] == "done"
		})
	}
	rows := jsonList(t, c.w, "repo", "list", "--on", "b1")
	if len(rows) != 2 {
		t.Fatalf("repo list --on b1: %v", rows)
	}
	for _, r := range rows {
		if !fingerprintRe.MatchString(r["fingerprint"].(string)) || r["fingerprint"] != r["local_fingerprint"] || r["match"] != true {
			t.Errorf("in step: %v", r)
		}
	}

	// A replica that differs from ours says so.
	commitInto(t, c.w, filepath.Join(path, "acme", "web.git"), "", "only on b1")
	rows = jsonList(t, c.w, "repo", "list", "--on", "b1")
	if r := heldRow(rows, "acme/web"); r == nil || r["match"] != false || r["fingerprint"] == r["local_fingerprint"] {
		t.Errorf("after a commit on b1 alone: %v", rows)
	}
	if out := c.w.MustAdmin("repo", "list", "--on", "b1"); !strings.Contains(out, "differs") || !strings.Contains(out, "matches") {
		t.Errorf("repo list --on b1:\n%s", out)
	}

	// A repository deleted here is still listed: b1 holds it.
	pubMain := revParse(filepath.Join(path, "acme", "pub.git"), "refs/heads/main")
	c.w.MustAdmin("repo", "delete", "acme/pub")
	rows = jsonList(t, c.w, "repo", "list", "--on", "b1")
	if r := heldRow(rows, "acme/pub"); r == nil || r["local_fingerprint"] != "" || r["match"] != false {
		t.Errorf("after deleting acme/pub here: %v", rows)
	}
	if out := c.w.MustAdmin("repo", "list", "acme", "--on", "b1"); !strings.Contains(out, "not here") {
		t.Errorf("repo list acme --on b1:\n%s", out)
	}

	// sync pull creates and registers it again; nothing else is made.
	wantError(t, c.w.Admin("", "sync", "pull", "acme/never", "--from", "b1"), "neither here nor on b1")
	wantError(t, c.w.Admin("", "sync", "pull", "ghost/pub", "--from", "b1"), "create the organisation first")
	wantError(t, c.w.Admin("", "sync", "pull", "acme/pub", "--from", "nosuch"), "not found")
	if out := c.w.MustAdmin("repo", "list", "acme"); strings.Contains(out, "never") || strings.Contains(out, "acme/pub") {
		t.Fatalf("failed pulls left repositories behind:\n%s", out)
	}
	out := c.w.MustAdmin("sync", "pull", "acme/pub", "--from", "b1")
	if !strings.Contains(out, "pulled acme/pub from b1") {
		t.Errorf("sync pull of a lost repository: %s", out)
	}
	if got := revParse(c.w.RepoDir("acme", "pub"), "refs/heads/main"); got == "" || got != pubMain {
		t.Errorf("restored main %q, want %q", got, pubMain)
	}
	// Registered: the org's owner reads it over ssh, and it is in step with b1.
	owner := c.clients["owner"]
	if r := owner.Git("", "ls-remote", owner.URL("acme/pub"), "refs/heads/main"); r.Code != 0 || !strings.Contains(r.Stdout, pubMain) {
		t.Errorf("ls-remote of the restored repository: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := heldRow(jsonList(t, c.w, "repo", "list", "--on", "b1"), "acme/pub"); r == nil || r["match"] != true {
		t.Errorf("restored acme/pub against b1: %v", r)
	}
	if out := c.w.MustAdmin("audit", "--limit", "5"); !strings.Contains(out, "sync.pull") || !strings.Contains(out, "created") {
		t.Errorf("audit after the restore:\n%s", out)
	}
	if out, err := exec.Command("git", "-C", c.w.RepoDir("acme", "pub"), "fsck", "--no-dangling").CombinedOutput(); err != nil {
		t.Errorf("fsck of the restored repository: %v %s", err, out)
	}
	wantError(t, c.w.Admin("", "repo", "list", "--on", "nosuch"), "not found")
}

// TestRepoListOnNeighbor lists the replicas a neighbour holds of this
// node's repositories, within its scope.
func TestRepoListOnNeighbor(t *testing.T) {
	n := newTwoNodes(t)
	n.approve(t)
	waitFor(t, 30*time.Second, "both repositories in step on B", func() bool {
		rows := jsonList(t, n.w, "repo", "list", "--on", n.bName)
		return len(rows) == 2 && rows[0]["match"] == true && rows[1]["match"] == true
	})
	// A neighbour does not restore a repository this node lost: from it,
	// one this node does not have is the neighbour's own.
	n.w.MustAdmin("repo", "delete", "acme/pub")
	wantError(t, n.w.Admin("", "sync", "pull", "acme/pub", "--from", n.bName), "not found")
	if out := n.w.MustAdmin("repo", "list"); strings.Contains(out, "acme/pub") {
		t.Errorf("a failed pull from a neighbour registered acme/pub:\n%s", out)
	}
	n.w.MustAdmin("server", "set", n.bName, "--repos", "acme/web")
	rows := jsonList(t, n.w, "repo", "list", "--on", n.bName)
	if len(rows) != 1 || rows[0]["repo"] != "acme/web" || !fingerprintRe.MatchString(rows[0]["fingerprint"].(string)) {
		t.Errorf("repo list --on %s, scoped to acme/web: %v", n.bName, rows)
	}
}
