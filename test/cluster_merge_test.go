package test

import (
	"strings"
	"testing"
)

// A merge on a cluster's primary is acknowledged like a push: the client
// sees "replicated to n2", and when the command returns the replica
// holds the merged branch. (Was: only queued, the replica behind.)
func TestClusterMergeIsReplicatedBeforeItSucceeds(t *testing.T) {
	p := syncPair(t, "--sync-timeout", "5s")
	p.via1.MustGit(p.work, "checkout", "-q", "-b", "feature")
	p.via1.Commit(p.work, "a feature")
	p.via1.MustGit(p.work, "push", "-q", p.via1.URL("acme/web"), "feature")
	r := p.via1.SSH(nil, "merge", "acme/web", "feature", "--into", "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "replicated to n2") || strings.Contains(r.Stderr, "warning") {
		t.Fatalf("merge: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	primary, replica := p.n1.RepoDir("acme", "web"), p.n2.RepoDir("acme", "web")
	if got, want := revParse(replica, "main"), revParse(primary, "main"); got != want {
		t.Fatalf("right after the merge the replica has main at %s, the primary at %s", got, want)
	}
}
