package hook

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"cpm/internal/names"
)

// A primary whose database is out of reach when post-receive runs (the
// refs have moved: git acknowledges the push whatever the hook says)
// warns the client that no replica holds the push, as after
// sync_timeout: the one kind of acknowledged push a failover may leave
// behind, under refs/cpm/diverged.
func TestReplicateWithoutTheDatabaseWarns(t *testing.T) {
	ctx := context.Background()
	st, dir, n1 := clusterRepo(t)
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	st.Close() // the database out of reach
	var out bytes.Buffer
	Replicate(ctx, st, dir, names.RepoPath{Org: "acme", Repo: "web"}, func(string) string { return "0" }, &out)
	if !strings.Contains(out.String(), "cpm: warning: not yet replicated to another node") ||
		!strings.Contains(out.String(), "refs/cpm/diverged/") {
		t.Errorf("post-receive without the database: %q", out.String())
	}
}
