// Package targetstate derives the one state of a replication target from
// its server row and its queue rows: ok, pending, retrying, blocked or
// promoted (and unapproved or disabled), with the cause and what to do.
// server list, sync status, server check, doctor and the metrics all show
// this state, so they never disagree.
package targetstate

import (
	"strings"
	"time"

	"cpm/internal/store"
)

// State is where a target stands.
type State int

const (
	OK         State = iota // every in-scope repository is synced
	Pending                 // work queued, nothing failing
	Retrying                // a sync failed; it is retried with backoff
	Blocked                 // nothing is sent until an operator acts
	Promoted                // the backup became a main server of its own
	Unapproved              // a neighbour not approved yet
	Disabled
)

var names = [...]string{"ok", "pending", "retrying", "blocked", "promoted", "unapproved", "disabled"}

func (s State) String() string {
	if int(s) < len(names) {
		return names[s]
	}
	return "unknown"
}

// States lists every state, for metrics that export one series each.
func States() []State {
	return []State{OK, Pending, Retrying, Blocked, Promoted, Unapproved, Disabled}
}

// Status is a target's derived state.
type Status struct {
	State    State
	Cause    string // why it is retrying, blocked or promoted
	Fix      string // what the operator does about it
	Pending  int    // repositories not synced yet
	Lag      time.Duration
	LastSync time.Time
}

// Up reports whether the target takes syncs now: ok or only pending.
func (s Status) Up() bool { return s.State == OK || s.State == Pending }

// String is the one line server list and doctor print.
func (s Status) String() string {
	if s.Cause == "" {
		return s.State.String()
	}
	return s.State.String() + ": " + s.Cause
}

// Of derives srv's status from its queue rows in jobs (rows of other
// servers are skipped) at time now.
func Of(srv store.Server, jobs []store.Job, now time.Time) Status {
	var st Status
	var lastErr string
	var lastErrAt time.Time
	for _, j := range jobs {
		if j.ServerID != srv.ID {
			continue
		}
		if j.LastSuccessAt.After(st.LastSync) {
			st.LastSync = j.LastSuccessAt
		}
		if j.Done() {
			continue
		}
		st.Pending++
		st.Lag = max(st.Lag, j.Lag(now))
		if j.LastError != "" && j.Attempts > 0 && (lastErr == "" || j.NextAttemptAt.After(lastErrAt)) {
			lastErr, lastErrAt = j.LastError, j.NextAttemptAt
		}
	}
	switch {
	case srv.BlockedReason != "" && isPromoted(srv.BlockedReason):
		st.State, st.Cause = Promoted, srv.BlockedReason
	case srv.BlockedReason != "":
		st.State, st.Cause = Blocked, srv.BlockedReason
	case !srv.Enabled:
		st.State = Disabled
	case srv.Role == store.Neighbor && !srv.Approved:
		st.State, st.Cause = Unapproved, "not approved here yet"
	case srv.MetaError != "":
		// Its replicas may be fine, but without the metadata a promoted
		// backup has no users, a neighbour no permissions.
		st.State, st.Cause = Retrying, srv.MetaError
	case lastErr != "":
		st.State, st.Cause = Retrying, lastErr
	case st.Pending > 0:
		st.State = Pending
	default:
		st.State = OK
	}
	st.Fix = fix(srv, st)
	return st
}

// JobState is what sync status shows for one queue row: a row of a
// blocked or promoted server is blocked with the server's reason, even
// if it was never tried.
func JobState(j store.Job, srv store.Server) (state, lastError string) {
	if !j.Done() && srv.BlockedReason != "" {
		s := Blocked
		if isPromoted(srv.BlockedReason) {
			s = Promoted
		}
		return s.String(), srv.BlockedReason
	}
	return string(j.State), j.LastError
}

func isPromoted(reason string) bool {
	return strings.Contains(reason, "promoted on ") && strings.Contains(reason, "no longer its main")
}

// fix is the operator's next step for a status, one per cause.
func fix(srv store.Server, st Status) string {
	n := srv.Name
	switch st.State {
	case OK, Pending:
		return ""
	case Disabled:
		return "nothing is sent to " + n + " while it is disabled"
	case Unapproved:
		return "check its fingerprints, then cpm-admin server approve " + n
	}
	// Blocked, Promoted and Retrying: the cause says what to do.
	return FixFor(srv, st.Cause, st.State == Blocked)
}

// FixFor is the operator's next step when reaching srv failed with cause;
// blocked says nothing is sent until they act.
func FixFor(srv store.Server, cause string, blocked bool) string {
	n := srv.Name
	c := strings.ToLower(cause)
	var step string
	switch {
	case isPromoted(cause):
		return n + " is a main server of its own now: cpm-admin server remove " + n + ", and add a new backup"
	case strings.Contains(c, "host key") && srv.Role == store.Node:
		step = "every node presents the cluster's host key: run cpm-admin init on " + n + " and on this node (it writes the key and the pins)"
	case strings.Contains(c, "host key"):
		step = "compare " + n + "'s host key (ssh-keygen -lf on it) with the pinned one; if it really changed, cpm-admin server set " + n + " --host-key LINE"
	case strings.Contains(c, "refused cpm's key") && srv.Role == store.Node:
		step = "run cpm-admin init again on this node (it records this node's replication key in the cluster's database), and the same cpm on " + n
	case strings.Contains(c, "refused cpm's key") && srv.Role == store.Neighbor:
		step = "on " + n + ", register this node and approve it"
	case strings.Contains(c, "refused cpm's key"):
		step = "install cpm-admin server pubkey's line in " + n + "'s authorized_keys, owned by " + srv.User + " (install -o " + srv.User + " -m 600)"
	case strings.Contains(c, "connection refused") || strings.Contains(c, "timed out") ||
		strings.Contains(c, "no route") || strings.Contains(c, "could not resolve"):
		step = "check that " + n + " is up and its ssh port reachable"
	case strings.Contains(c, "no space") || strings.Contains(c, "disk quota") || strings.Contains(c, "disk full"):
		step = "free space on " + n
	case strings.HasPrefix(c, "deliver "):
		step = "see the \"deliver metadata\" events in cpm's log for " + n
	default:
		step = "see cpm-admin sync status for " + n
	}
	if blocked {
		return step + "; then cpm-admin sync retry (or server check " + n + ", which lifts the block when it passes)"
	}
	return step + "; it is retried on its own"
}
