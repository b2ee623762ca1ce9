package admin

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"cpm/internal/store"
	"cpm/internal/targetstate"
)

// StatusRow is one queue row as sync status shows it: its derived state
// and lag. The JSON keys are sync status --json's.
type StatusRow struct {
	Repo          string  `json:"repo"`
	Server        string  `json:"server"`
	State         string  `json:"state"`
	LagSeconds    float64 `json:"lag_seconds"`
	Attempts      int     `json:"attempts"`
	LastError     string  `json:"last_error"`
	LastSuccessAt string  `json:"last_success_at"`
	Fingerprint   string  `json:"fingerprint"`
	// The last deep check of the replica: when, and what it found.
	DeepCheckedAt string `json:"deep_checked_at"`
	DeepResult    string `json:"deep_result"`
}

// Failing reports whether the row is a failure to show: not synced, with
// an error.
func (r StatusRow) Failing() bool { return r.LastError != "" && r.State != string(store.JobDone) }

// SyncStatus returns every replication row, in repository and server
// order.
func (s *Service) SyncStatus(ctx context.Context) ([]StatusRow, error) {
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]store.Server, len(servers))
	for _, srv := range servers {
		byID[srv.ID] = srv
	}
	now := time.Now()
	out := make([]StatusRow, 0, len(jobs))
	for _, j := range jobs {
		state, lastErr := targetstate.JobState(j, byID[j.ServerID])
		r := StatusRow{Repo: j.Repo, Server: j.Server, State: state, Attempts: j.Attempts, LastError: lastErr,
			Fingerprint: j.Fingerprint, LagSeconds: j.Lag(now).Seconds()}
		if !j.LastSuccessAt.IsZero() {
			r.LastSuccessAt = j.LastSuccessAt.Format(time.RFC3339)
		}
		if !j.DeepCheckedAt.IsZero() {
			r.DeepCheckedAt, r.DeepResult = j.DeepCheckedAt.Format(time.RFC3339), j.DeepResult
		}
		out = append(out, r)
	}
	return out, nil
}

// StatusSummary is sync status for many rows: counts per server and
// state, the row waiting longest, and the first failures.
type StatusSummary struct {
	Rows    int
	Servers []ServerCounts
	// Oldest is the row not synced with the greatest lag (nil: none).
	Oldest *StatusRow
	// Failures holds up to the limit's failing rows, the longest
	// waiting first; MoreFailures counts the rest.
	Failures     []StatusRow
	MoreFailures int
}

// ServerCounts counts one server's rows by state.
type ServerCounts struct {
	Server string
	States map[string]int
}

// Summarize sums rows up, listing at most limit failures.
func Summarize(rows []StatusRow, limit int) StatusSummary {
	sum := StatusSummary{Rows: len(rows)}
	at := map[string]int{}
	var failing []StatusRow
	for i, r := range rows {
		k, ok := at[r.Server]
		if !ok {
			k = len(sum.Servers)
			at[r.Server] = k
			sum.Servers = append(sum.Servers, ServerCounts{Server: r.Server, States: map[string]int{}})
		}
		sum.Servers[k].States[r.State]++
		if r.State != string(store.JobDone) && (sum.Oldest == nil || r.LagSeconds > sum.Oldest.LagSeconds) {
			sum.Oldest = &rows[i]
		}
		if r.Failing() {
			failing = append(failing, r)
		}
	}
	slices.SortFunc(sum.Servers, func(a, b ServerCounts) int { return strings.Compare(a.Server, b.Server) })
	slices.SortStableFunc(failing, func(a, b StatusRow) int { return cmp.Compare(b.LagSeconds, a.LagSeconds) })
	if len(failing) > limit {
		sum.Failures, sum.MoreFailures = failing[:limit], len(failing)-limit
	} else {
		sum.Failures = failing
	}
	return sum
}
