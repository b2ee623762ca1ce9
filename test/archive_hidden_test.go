package test

import (
	"os/exec"
	"strings"
	"testing"
)

// git archive --remote serves no ref under refs/cpm/ (diverged writes of
// an old primary, never published), by its full name or by any shorter
// name git resolves there; upload-archive ignores transfer.hideRefs.
func TestArchiveHidesCPMRefs(t *testing.T) {
	c := newCompany(t)
	dir := c.w.RepoDir("acme", "web")
	if out, err := exec.Command("git", "-C", dir, "update-ref", "refs/cpm/diverged/3/refs/heads/main", c.main).CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	cl := c.clients["reader"]
	for _, name := range []string{"refs/cpm/diverged/3/refs/heads/main", "cpm/diverged/3/refs/heads/main", "refs/cpm/diverged/3/refs/heads/main:README"} {
		r := cl.Git("", "archive", "--remote="+c.srv.URL("acme/web"), name)
		if r.Code == 0 || !strings.Contains(r.Stderr, "no such ref") {
			t.Errorf("archive %s: exit %d\n%s", name, r.Code, r.Stderr)
		}
	}
	if r := cl.Git("", "archive", "--remote="+c.srv.URL("acme/web"), "main"); r.Code != 0 {
		t.Errorf("archive main: %+v", r.Stderr)
	}
}
