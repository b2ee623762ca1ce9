package hook

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/names"
	"cpm/internal/syncack"
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

// A primary whose push cannot take the repository's row (a replica
// write into a peer that died holds it shared) gives up when its
// deadline passes (RecordTimeout, here the test's shorter one): the
// client is warned and acknowledged, not held.
func TestReplicateGivesUpOnAHeldRow(t *testing.T) {
	const bound = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	st, dir, n1 := clusterRepo(t)
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	repo, err := st.Repo(ctx, "acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	n2, err := st.NodeByName(ctx, "n2")
	if err != nil {
		t.Fatal(err)
	}
	held, err := st.BeginReplicaWrite(context.Background(), repo.ID, n1.ID, n2.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback()
	done := make(chan string, 1)
	go func() {
		var out bytes.Buffer
		Replicate(ctx, st, dir, names.RepoPath{Org: "acme", Repo: "web"}, func(string) string { return "0" }, &out)
		done <- out.String()
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, "cpm: warning: not yet replicated to another node") {
			t.Errorf("post-receive with the row held: %q", out)
		}
	case <-time.After(bound + 5*time.Second):
		held.Rollback()
		<-done
		t.Fatal("post-receive waited for the held row past its deadline")
	}
}

// A push taken without the lease (a short database outage) leaves a
// dirty marker: if no other node took over, this node is still the
// primary once its lease holds again, and the replicas must get it.
func TestReplicateFencedLeavesAMarker(t *testing.T) {
	st, dir, _ := clusterRepo(t)
	var out bytes.Buffer
	Replicate(context.Background(), st, dir, names.RepoPath{Org: "acme", Repo: "web"}, func(string) string { return "0" }, &out)
	if !strings.Contains(out.String(), "lost its lease") {
		t.Fatalf("post-receive without the lease: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir.Dirty(), "acme+web")); err != nil {
		t.Fatalf("no dirty marker: %v", err)
	}
}

// Every push acknowledged with a warning that the workers did not answer
// themselves is reported to them, to be counted.
func TestReplicateCountsWarnedPushes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, dir, _ := clusterRepo(t)
	reports := make(chan syncack.Request, 4)
	if err := syncack.Listen(ctx, dir.SyncSocket(), time.Second, func(_ context.Context, req syncack.Request) syncack.Answer {
		reports <- req
		return syncack.Answer{}
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Replicate(ctx, st, dir, names.RepoPath{Org: "acme", Repo: "web"}, func(string) string { return "0" }, &out)
	if !strings.Contains(out.String(), "lost its lease") {
		t.Fatalf("post-receive without the lease: %q", out.String())
	}
	select {
	case req := <-reports:
		if !req.Unreplicated || req.Repo != "acme/web" {
			t.Errorf("reported %+v", req)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a push acknowledged without the lease was not reported")
	}
}
