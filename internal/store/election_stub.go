package store

import "time"

// Election is one change of a repository's primary: by an election after
// its primary's lease ran out, or by a planned handover (repo move, node
// drain).
//
// H3 stand-in for H1's type in election.go: the lead deletes this file
// when merging H1 (same name, same fields).
type Election struct {
	RepoID     int64
	Repo       string // ORG/REPO
	From, To   string // node names: the old primary, the new
	Epoch      int64  // the new epoch
	Generation int64  // the generation the new primary holds
	Cause      string // CauseLeaseExpired, CauseMove, CauseDrain
	// Without is how long the repository had no live primary (zero for
	// a handover).
	Without time.Duration
}

// Causes of an Election.
const (
	CauseLeaseExpired = "lease_expired"
	CauseMove         = "move"
	CauseDrain        = "drain"
)
