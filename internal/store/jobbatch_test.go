package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestClaimBatch(t *testing.T) { onBoth(t, testClaimBatch) }

// A batch adds to a claim up to its limit of the server's due jobs that
// have not failed since their last success, all under the claim's own
// lease holder; claims of several workers at once never take one job
// twice; RenewBatch renews exactly the batch's jobs, and Done refuses a
// job whose lease another claim took over.
func testClaimBatch(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateOrg(ctx, admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	const repos = 30
	for i := range repos {
		if _, err := s.CreateRepo(ctx, admin, NewRepo{Org: "acme", Name: fmt.Sprintf("r%02d", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddServer(ctx, admin, Server{Name: "b1", Host: "127.0.0.1", Port: 22, User: "cpm", Path: "/x", Role: "backup"}); err != nil {
		t.Fatal(err)
	}
	// One job failed once: it goes alone.
	first, ok, err := s.Claim(ctx, "w", 0, time.Minute, nil)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := s.Failed(ctx, first, "boom", time.Now().Add(-time.Second), false); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, ok, err := s.Claim(ctx, fmt.Sprintf("w%d", w), 0, time.Minute, nil)
				if err != nil || !ok {
					if err != nil {
						t.Error(err)
					}
					return
				}
				jobs := []Job{j}
				if j.Attempts == 0 {
					if jobs, err = s.ClaimBatch(ctx, j.Owner, 0, time.Minute, j.ServerID, 6); err != nil {
						t.Error(err)
						return
					}
				}
				if len(jobs) > 7 {
					t.Errorf("a batch of %d, limit 1 + 6", len(jobs))
				}
				mu.Lock()
				for _, b := range jobs {
					seen[b.RepoID]++
					if b.Owner != j.Owner {
						t.Errorf("a job of the batch under %q, the claim's is %q", b.Owner, j.Owner)
					}
					if b.RepoID == first.RepoID && len(jobs) > 1 {
						t.Error("the job that failed went in a batch")
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != repos {
		t.Errorf("claimed %d jobs, want %d", len(seen), repos)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job of repository %d claimed %d times", id, n)
		}
	}

	// A batch's renewal, and a lease lost to another claim.
	testBatchLease(t, s)
}

func testBatchLease(t *testing.T, s *Store) {
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET state = 'pending', attempts = 0, lease_owner = '', lease_until = ''`); err != nil {
		t.Fatal(err)
	}
	j, ok, err := s.Claim(ctx, "w", 0, time.Minute, nil)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	jobs, err := s.ClaimBatch(ctx, j.Owner, 0, time.Minute, j.ServerID, 4)
	if err != nil || len(jobs) != 5 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	if n, err := s.RenewBatch(ctx, j.Owner, time.Minute); err != nil || n != 5 {
		t.Errorf("renewed %d, %v; want 5", n, err)
	}
	// Another worker took one over after its lease ran out.
	lost := jobs[2]
	if _, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET lease_owner = 'other' WHERE repo_id = ? AND server_id = ?`,
		lost.RepoID, lost.ServerID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RenewBatch(ctx, j.Owner, time.Minute); err != nil || n != 4 {
		t.Errorf("renewed %d, %v; want 4", n, err)
	}
	if err := s.Done(ctx, lost, lost.Generation, 0, "f", 0); err == nil {
		t.Error("a job whose lease was lost mid-batch was marked done")
	}
	if err := s.Done(ctx, jobs[0], jobs[0].Generation, 0, "f", 0); err != nil {
		t.Error(err)
	}
}
