package targetstate

import (
	"strings"
	"testing"
	"time"

	"cpm/internal/store"
)

func TestOf(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	backup := store.Server{ID: 1, Name: "b1", Role: "backup", User: "cpm", Enabled: true, Approved: true}
	done := store.Job{ServerID: 1, State: "done", Generation: 3, SyncedGeneration: 3, LastSuccessAt: now.Add(-time.Minute)}
	pending := store.Job{ServerID: 1, State: "pending", Generation: 4, SyncedGeneration: 3, DirtySince: now.Add(-5 * time.Second)}
	failing := store.Job{ServerID: 1, State: "failed", Generation: 2, SyncedGeneration: 1, Attempts: 3,
		DirtySince: now.Add(-time.Hour), LastError: "ssh b1: exit 255: ssh: connect to host x port 22: Connection refused"}
	other := store.Job{ServerID: 2, State: "failed", Attempts: 1, LastError: "elsewhere"}
	with := func(f func(*store.Server)) store.Server { s := backup; f(&s); return s }

	for _, tc := range []struct {
		name    string
		srv     store.Server
		jobs    []store.Job
		state   State
		cause   string // contained in Cause
		fix     string // contained in Fix
		pending int
		lag     time.Duration
		up      bool
	}{
		{"all synced", backup, []store.Job{done, other}, OK, "", "", 0, 0, true},
		{"a push on its way", backup, []store.Job{done, pending}, Pending, "", "", 1, 5 * time.Second, true},
		{"a sync failing", backup, []store.Job{pending, failing}, Retrying, "Connection refused", "is up and its ssh port reachable; it is retried on its own", 2, time.Hour, false},
		{"host key mismatch", with(func(s *store.Server) {
			s.BlockedReason = "ssh b1: Host key verification failed: the server's host key is not the one pinned at server add"
		}), []store.Job{pending}, Blocked, "Host key", "server set b1 --host-key", 1, 5 * time.Second, false},
		{"key refused", with(func(s *store.Server) {
			s.BlockedReason = "rsync to b1: the server refused cpm's key; on a backup, install …"
		}), []store.Job{pending}, Blocked, "refused", "install -o cpm -m 600", 1, 5 * time.Second, false},
		{"promoted", with(func(s *store.Server) {
			s.BlockedReason = "ssh b1: promoted on 2026-12-01T10:00:00Z by b:/srv; this node is no longer its main"
		}), nil, Promoted, "promoted on", "server remove b1", 0, 0, false},
		{"neighbour not approved", with(func(s *store.Server) { s.Role, s.Approved = "neighbor", false }), nil, Unapproved, "", "server approve b1", 0, 0, false},
		{"snapshot not delivered", with(func(s *store.Server) {
			s.MetaError = "deliver snapshot to b1: tar to b1: exit 2: tar: cannot open"
		}), []store.Job{done}, Retrying, "deliver snapshot", "deliver metadata", 0, 0, false},
		{"disk full", backup, []store.Job{{ServerID: 1, State: "failed", Attempts: 1, Generation: 2, SyncedGeneration: 1,
			DirtySince: now.Add(-time.Minute), LastError: "disk full: 10 MiB free, needs 80"}}, Retrying, "disk full", "free space on b1", 1, time.Minute, false},
		{"disabled", with(func(s *store.Server) { s.Enabled = false }), []store.Job{failing}, Disabled, "", "disabled", 1, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Of(tc.srv, tc.jobs, now)
			if st.State != tc.state || !strings.Contains(st.Cause, tc.cause) || !strings.Contains(st.Fix, tc.fix) ||
				st.Pending != tc.pending || st.Lag != tc.lag || st.Up() != tc.up {
				t.Errorf("got %+v (up %v)", st, st.Up())
			}
			if (tc.fix == "") != (st.Fix == "") {
				t.Errorf("fix %q", st.Fix)
			}
		})
	}
}

// A queue row of a blocked server is blocked with the server's reason,
// even when it was never tried.
func TestJobState(t *testing.T) {
	j := store.Job{ServerID: 1, State: "pending"}
	blocked := store.Server{ID: 1, BlockedReason: "Host key verification failed"}
	if s, e := JobState(j, blocked); s != "blocked" || e != blocked.BlockedReason {
		t.Errorf("pending row of a blocked server: %s %q", s, e)
	}
	j.State = "done"
	if s, e := JobState(j, blocked); s != "done" || e != "" {
		t.Errorf("done row: %s %q", s, e)
	}
	promoted := store.Server{ID: 1, BlockedReason: "promoted on X; this node is no longer its main"}
	if s, _ := JobState(store.Job{State: "failed"}, promoted); s != "promoted" {
		t.Errorf("row of a promoted server: %s", s)
	}
}

// A node of the cluster is not fixed by installing a key in an
// authorized_keys file or re-pinning it by hand: init does both.
func TestFixForNode(t *testing.T) {
	node := store.Server{Name: "n2", Role: store.Node, Approved: true, Enabled: true}
	for cause, want := range map[string]string{
		"ssh: n2 refused cpm's key":    "run cpm-admin init again on this node",
		"host key verification failed": "cluster's host key",
	} {
		if got := FixFor(node, cause, false); !strings.Contains(got, want) {
			t.Errorf("%s: %s", cause, got)
		}
	}
}
