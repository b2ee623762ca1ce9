package store

import "time"

// Role is what a replication target is to this node.
type Role string

const (
	// Backup is a plain ssh+rsync server holding copies; it never serves.
	Backup Role = "backup"
	// Neighbor is another cpm node that serves read-only replicas; it
	// takes them only once both sides approved each other.
	Neighbor Role = "neighbor"
	// Node is another node of the same cluster (same database): it holds
	// replicas of repositories whose primary is elsewhere, and any node
	// may serve any user. Nodes are made by `cpm-admin init --node-name`,
	// never by `server add`.
	Node Role = "node"
)

// Valid reports whether r is a role the servers table accepts.
func (r Role) Valid() bool { return r == Backup || r == Neighbor }

// Eligible reports whether syncs and checks go to the server at all: a
// backup, or an approved neighbour, enabled and not blocked. Whether it
// is reachable now is the workers' circuit breaker's business.
func (s Server) Eligible() bool {
	return (s.Role == Backup || s.Approved) && s.Enabled && s.BlockedReason == ""
}

// JobState is where one repository stands on one target.
type JobState string

const (
	JobPending JobState = "pending" // pushed to since the last sync
	JobRunning JobState = "running" // a worker holds its lease
	JobFailed  JobState = "failed"  // the last attempt failed; retried with backoff
	JobBlocked JobState = "blocked" // held until an operator acts
	JobDone    JobState = "done"    // the replica is verified equal to the source
)

// Done reports whether the replica is verified equal to its source.
func (j Job) Done() bool { return j.State == JobDone }

// Lag is how long the oldest push not yet on the target has waited at
// now; zero when nothing waits.
func (j Job) Lag(now time.Time) time.Duration {
	if j.Done() || j.DirtySince.IsZero() || j.Generation <= j.SyncedGeneration {
		return 0
	}
	return now.Sub(j.DirtySince)
}
