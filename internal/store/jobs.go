package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job is one repository x target row of the replication queue.
type Job struct {
	RepoID           int64     `json:"-"`
	ServerID         int64     `json:"-"`
	Repo             string    `json:"repo"`
	Server           string    `json:"server"`
	Generation       int64     `json:"generation"`
	SyncedGeneration int64     `json:"synced_generation"`
	State            JobState  `json:"state"`
	Attempts         int       `json:"attempts"`
	NextAttemptAt    time.Time `json:"next_attempt_at"`
	DirtySince       time.Time `json:"dirty_since"`
	LastError        string    `json:"last_error"`
	LastSuccessAt    time.Time `json:"last_success_at"`
	Fingerprint      string    `json:"fingerprint"`
	Bytes            int64     `json:"bytes"`
	// The last deep check: when, and what it found ("" for nothing).
	DeepCheckedAt time.Time `json:"deep_checked_at,omitzero"`
	DeepResult    string    `json:"deep_result,omitempty"`
	// RepoGeneration is the repository generation the last verified sync
	// brought to the target (Done's repoGen).
	RepoGeneration int64 `json:"-"`
	// PrimaryID is the repository's primary node (0: none, outside a
	// cluster): only its workers sync, reconcile and check the job.
	PrimaryID int64 `json:"-"`
	// DivergeEpoch is non-zero on the job of a node that was the
	// repository's primary before that epoch: what it holds that the new
	// primary lacks is saved under refs/cpm/diverged/EPOCH/ before the
	// new primary's copy replaces it.
	DivergeEpoch int64 `json:"-"`
	// Owner is the lease holder Claim gave the job to ("" for a job read
	// otherwise): Done, Failed and Renew act only while it still holds
	// the lease, so a worker whose lease ran out (a stall longer than
	// the lease) cannot overwrite the outcome of the one that took over.
	Owner string `json:"-"`
}

// ErrLeaseLost: the job's lease ran out and another worker took it; the
// outcome is that worker's to record.
var ErrLeaseLost = errors.New("lease lost to another worker")

// markDirty's SQL: one durable row per repository x enabled target. A push
// bumps the generation; rows already pending keep their dirty_since, so the
// lag shows the oldest unsynced push. A cluster node is a target only of
// the repositories it holds a replica of: its rows exist already (placing
// made them), and this never adds one.
const markDirtySQL = `
	INSERT INTO replication_jobs AS j (repo_id, server_id, generation, state, next_attempt_at, dirty_since)
	SELECT ?1, s.id, 1, 'pending', ?2, ?2 FROM servers s
	WHERE s.enabled = 1 AND (s.role = 'backup' OR (s.role = 'neighbor' AND s.approved = 1)
	      OR (s.role = 'node' AND EXISTS (SELECT 1 FROM replication_jobs x WHERE x.repo_id = ?1 AND x.server_id = s.id)))
	ON CONFLICT (repo_id, server_id) DO UPDATE SET
		generation = j.generation + 1,
		state = CASE WHEN j.state IN ('running', 'blocked') THEN j.state ELSE 'pending' END,
		next_attempt_at = CASE WHEN j.state = 'failed' THEN j.next_attempt_at ELSE excluded.next_attempt_at END,
		dirty_since = CASE WHEN j.dirty_since = '' OR j.generation = j.synced_generation THEN excluded.dirty_since ELSE j.dirty_since END,
		pending_since = CASE WHEN j.state = 'running' AND j.pending_since = '' THEN excluded.dirty_since ELSE j.pending_since END`

// MarkDirty records that ORG/REPO changed (an accepted push, a merge, an
// LFS upload, a restore): it bumps the repository's generation and marks
// it for every target, in one transaction.
func (s *Store) MarkDirty(ctx context.Context, org, repo string) error {
	r, err := s.Repo(ctx, org, repo)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE repos SET generation = generation + 1 WHERE id = ?`, r.ID); err != nil {
		return fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	if _, err := tx.ExecContext(ctx, markDirtySQL, r.ID, now()); err != nil {
		return fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue %s for replication: %w", r.FullName(), err)
	}
	return nil
}

// RepoGeneration is the repository's generation now. A worker reads it
// before a sync's ref snapshot and hands it to Done, so the generation a
// replica is said to hold is never ahead of what it got.
func (s *Store) RepoGeneration(ctx context.Context, repoID int64) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT generation FROM repos WHERE id = ?`, repoID).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("repository %d %w", repoID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read generation of repository %d: %w", repoID, err)
	}
	return g, nil
}

// MarkStale queues one repository for one server again: reconciliation
// found its replica different from the source.
func (s *Store) MarkStale(ctx context.Context, repoID, serverID int64) error {
	at := now()
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO replication_jobs AS j (repo_id, server_id, generation, state, next_attempt_at, dirty_since)
		VALUES (?1, ?2, 1, 'pending', ?3, ?3)
		ON CONFLICT (repo_id, server_id) DO UPDATE SET
			generation = j.generation + 1,
			state = CASE WHEN j.state IN ('running', 'blocked') THEN j.state ELSE 'pending' END,
			next_attempt_at = CASE WHEN j.state = 'failed' THEN j.next_attempt_at ELSE excluded.next_attempt_at END,
			dirty_since = CASE WHEN j.dirty_since = '' OR j.generation = j.synced_generation THEN excluded.dirty_since ELSE j.dirty_since END`,
		repoID, serverID, at)
	if err != nil {
		return fmt.Errorf("queue repository %d for server %d: %w", repoID, serverID, err)
	}
	return nil
}

// RequeueServer queues every repository for one server (its scope
// changed).
func (s *Store) RequeueServer(ctx context.Context, serverID int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE replication_jobs SET generation = generation + 1,
		state = CASE WHEN state IN ('running', 'blocked') THEN state ELSE 'pending' END
		WHERE server_id = ?`, serverID); err != nil {
		return fmt.Errorf("requeue server %d: %w", serverID, err)
	}
	if err := markAllDirty(ctx, tx, serverID); err != nil {
		return fmt.Errorf("requeue server %d: %w", serverID, err)
	}
	return tx.Commit()
}

func markAllDirty(ctx context.Context, tx *Tx, serverID int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO replication_jobs (repo_id, server_id, generation, state, next_attempt_at, dirty_since)
		SELECT r.id, ?1, 1, 'pending', ?2, ?2 FROM repos r
		WHERE NOT EXISTS (SELECT 1 FROM servers s WHERE s.id = ?1 AND s.role = 'node') -- a node holds only its placed replicas
		ON CONFLICT DO NOTHING`, serverID, now())
	return err
}

const jobSelect = `
	SELECT j.repo_id, j.server_id, o.name || '/' || r.name, s.name, j.generation, j.synced_generation,
	       j.state, j.attempts, j.next_attempt_at, j.dirty_since, j.last_error, j.last_success_at, j.fingerprint, j.bytes,
	       j.deep_checked_at, j.deep_result, j.repo_generation, coalesce(r.primary_id, 0), j.diverge_epoch
	FROM replication_jobs j
	JOIN repos r ON r.id = j.repo_id JOIN orgs o ON o.id = r.org_id JOIN servers s ON s.id = j.server_id`

func scanJob(sc scanner) (Job, error) {
	var j Job
	var next, dirty, success, deep string
	err := sc.Scan(&j.RepoID, &j.ServerID, &j.Repo, &j.Server, &j.Generation, &j.SyncedGeneration, &j.State,
		&j.Attempts, &next, &dirty, &j.LastError, &success, &j.Fingerprint, &j.Bytes, &deep, &j.DeepResult, &j.RepoGeneration, &j.PrimaryID, &j.DivergeEpoch)
	j.NextAttemptAt, j.DirtySince, j.LastSuccessAt = parseTime(next), parseTime(dirty), parseTime(success)
	j.DeepCheckedAt = parseTime(deep)
	return j, err
}

// SetDeepCheck records a replica's deep check: when, and what it found
// ("" for nothing wrong).
func (s *Store) SetDeepCheck(ctx context.Context, repoID, serverID int64, at time.Time, result string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET deep_checked_at = ?, deep_result = ? WHERE repo_id = ? AND server_id = ?`,
		at.UTC().Format(timeFormat), result, repoID, serverID)
	if err != nil {
		return fmt.Errorf("record deep check: %w", err)
	}
	return nil
}

// Jobs lists the queue, for sync status.
func (s *Store) Jobs(ctx context.Context) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, jobSelect+` ORDER BY o.name, r.name, s.name`)
	if err != nil {
		return nil, fmt.Errorf("list replication jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list replication jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Claim takes the next due job for one of the given servers (nil: any),
// skipping pairs already running, and leases it to owner until lease.
// A lease that ran out (the worker died) makes the job due again, so a
// crash never loses a sync. Backups' jobs go before neighbours' (the
// seed's order: main, backups, neighbours): when workers are scarce, a
// copy that can be promoted matters more than one that serves reads.
// Within each, a job whose lease ran out goes first (it was due before
// it was claimed), then the longest due.
//
// self is the claiming node's server id (0 outside a cluster): a job of
// a repository that has a primary is claimed only by that primary's
// workers, since only its copy is the source. Replicas on other nodes go
// first of all: they are the service's own copies, which serve reads
// and would take over from the primary.
func (s *Store) Claim(ctx context.Context, owner string, self int64, lease time.Duration, servers []int64) (Job, bool, error) {
	if servers != nil && len(servers) == 0 {
		return Job{}, false, nil
	}
	until := time.Now().UTC().Add(lease).Format(timeFormat)
	// Each claim is its own lease holder: the workers of one process share
	// owner, and one of them must not renew or finish a job that another
	// took over after its lease ran out.
	owner += "/" + rand.Text()[:10]
	repoID, serverID, found, err := s.takeJob(ctx, owner, self, until, servers)
	if err != nil || !found {
		return Job{}, false, err
	}
	j, err := scanJob(s.db.QueryRowContext(ctx, jobSelect+` WHERE j.repo_id = ? AND j.server_id = ?`, repoID, serverID))
	if err != nil {
		return Job{}, false, fmt.Errorf("claim job: %w", err)
	}
	j.Owner = owner
	return j, true, nil
}

// claimOrder is the order in which Claim looks for a job: each query
// walks an index in next_attempt_at order and stops at its first row
// (replication_jobs_due for leases that ran out, replication_jobs_next
// for due jobs), so a claim costs the same with 20 or 20,000 jobs due.
var claimOrder = []struct{ role, due string }{
	{"node", `j.state = 'running' AND j.lease_until <= ?`},
	{"node", `j.state IN ('pending', 'failed') AND j.next_attempt_at <= ?`},
	{"backup", `j.state = 'running' AND j.lease_until <= ?`},
	{"backup", `j.state IN ('pending', 'failed') AND j.next_attempt_at <= ?`},
	{"neighbor", `j.state = 'running' AND j.lease_until <= ?`},
	{"neighbor", `j.state IN ('pending', 'failed') AND j.next_attempt_at <= ?`},
}

// takeJob leases the first job of claimOrder to owner, each attempt in
// one statement: the UPDATE's subquery picks the row and the UPDATE takes
// it atomically (SQLite: one write at a time; PostgreSQL: the row lock of
// claimLock, held to the end of the statement's transaction).
func (s *Store) takeJob(ctx context.Context, owner string, self int64, until string, servers []int64) (repoID, serverID int64, found bool, err error) {
	t := now()
	filter := ""
	if servers != nil {
		filter = " AND j.server_id IN (" + placeholders(len(servers)) + ")"
	}
	for _, c := range claimOrder {
		if self == 0 && c.role == string(Node) {
			continue // outside a cluster there are no node targets
		}
		args := []any{owner, until, t, c.role, self}
		for _, id := range servers {
			args = append(args, id)
		}
		err = s.db.QueryRowContext(ctx, `
			UPDATE replication_jobs SET state = 'running', lease_owner = ?, lease_until = ?, pending_since = ''
			WHERE (repo_id, server_id) = (
				SELECT j.repo_id, j.server_id FROM replication_jobs j
				WHERE `+c.due+`
				  AND j.server_id IN (SELECT id FROM servers s WHERE s.enabled = 1 AND s.blocked_reason = ''
				                      AND s.role = ? AND (s.role = 'backup' OR s.approved = 1))
				  AND EXISTS (SELECT 1 FROM repos r WHERE r.id = j.repo_id AND (r.primary_id IS NULL OR r.primary_id = ?))`+filter+`
				ORDER BY j.next_attempt_at LIMIT 1`+s.claimLock()+`)
			RETURNING repo_id, server_id`, args...).Scan(&repoID, &serverID)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("claim job: %w", err)
		}
		return repoID, serverID, true, nil
	}
	return 0, 0, false, nil
}

// claimLock makes a claim exclusive. SQLite's write transaction
// (_txlock=immediate) already is: one claimer at a time. On PostgreSQL at
// READ COMMITTED two workers would read the same due row; FOR UPDATE
// makes the second wait for the first, and SKIP LOCKED lets it take the
// next due job instead, so workers of any number of nodes never claim one
// job twice and never queue behind each other.
func (s *Store) claimLock() string {
	if s.db.d == postgres {
		return ` FOR UPDATE OF j SKIP LOCKED`
	}
	return ""
}

func placeholders(n int) string {
	b := make([]byte, 0, 2*n)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

// Done records a verified sync that covered generation gen of the job.
// Pushes that arrived meanwhile raised the generation, and keep the job
// pending. repoGen is the repository's generation read before the sync's
// ref snapshot (RepoGeneration; 0 when unknown): the generation the
// target now holds, which never goes back.
func (s *Store) Done(ctx context.Context, j Job, gen, repoGen int64, fingerprint string, bytes int64) error {
	t := now()
	res, err := s.db.ExecContext(ctx, `
		UPDATE replication_jobs SET
			synced_generation = ?1,
			repo_generation = CASE WHEN repo_generation > ?7 THEN repo_generation ELSE ?7 END,
			state = CASE WHEN generation > ?1 THEN 'pending' ELSE 'done' END,
			next_attempt_at = ?2, attempts = 0, last_error = '', last_success_at = ?2,
			dirty_since = CASE WHEN generation <= ?1 THEN '' WHEN pending_since <> '' THEN pending_since ELSE ?2 END,
			pending_since = '',
			lease_owner = '', lease_until = '', fingerprint = ?3, bytes = ?4
		WHERE repo_id = ?5 AND server_id = ?6 AND (?8 = '' OR lease_owner = ?8)`,
		gen, t, fingerprint, bytes, j.RepoID, j.ServerID, repoGen, j.Owner)
	if err != nil {
		return fmt.Errorf("record sync of %s to %s: %w", j.Repo, j.Server, err)
	}
	return leaseHeld(res, j)
}

// leaseHeld turns an update of a claimed job that matched no row into
// ErrLeaseLost.
func leaseHeld(res sql.Result, j Job) error {
	if n, err := res.RowsAffected(); err == nil && n == 0 && j.Owner != "" {
		return fmt.Errorf("%s to %s: %w", j.Repo, j.Server, ErrLeaseLost)
	}
	return nil
}

// Failed records a failed attempt and when to try again.
func (s *Store) Failed(ctx context.Context, j Job, reason string, retryAt time.Time, blocked bool) error {
	state := JobFailed
	if blocked {
		state = JobBlocked
	}
	res, err := s.db.ExecContext(ctx, `
		UPDATE replication_jobs SET state = ?1, attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3,
			lease_owner = '', lease_until = ''
		WHERE repo_id = ?4 AND server_id = ?5 AND (?6 = '' OR lease_owner = ?6)`,
		state, reason, retryAt.UTC().Format(timeFormat), j.RepoID, j.ServerID, j.Owner)
	if err != nil {
		return fmt.Errorf("record failed sync of %s to %s: %w", j.Repo, j.Server, err)
	}
	return leaseHeld(res, j)
}

// Retry clears backoff and blocks: every unfinished job is due now.
func (s *Store) Retry(ctx context.Context, a Actor) (int64, error) {
	var n int64
	err := s.change(ctx, a, "sync.retry", "*", nil, keepsMeta, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET blocked_reason = ''`); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE replication_jobs SET state = 'pending', next_attempt_at = ?
			WHERE state IN ('failed', 'blocked', 'pending')`, now())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// RetryServer makes every waiting job of one server due now (a cluster
// node that was down is back), keeping its attempt count for the record.
// Pending jobs too: a push to a job that had failed makes it pending but
// keeps the failure's retry time (markDirtySQL).
func (s *Store) RetryServer(ctx context.Context, serverID int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET next_attempt_at = ? WHERE server_id = ? AND state IN ('pending', 'failed')`,
		now(), serverID)
	if err != nil {
		return fmt.Errorf("retry the jobs of server %d: %w", serverID, err)
	}
	return nil
}

// JobFor returns the queue row of one repository and target.
func (s *Store) JobFor(ctx context.Context, repoID, serverID int64) (Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, jobSelect+` WHERE j.repo_id = ? AND j.server_id = ?`, repoID, serverID))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("no replication of this repository to this server: %w", ErrNotFound)
	}
	return j, err
}

// ReleaseLeases makes the jobs leased by owner due again. A worker calls
// it when it starts: anything it held before a crash is not running now.
func (s *Store) ReleaseLeases(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, `
		UPDATE replication_jobs SET state = 'pending', lease_owner = '', lease_until = '', next_attempt_at = ?1
		WHERE state = 'running' AND (lease_owner = ?2 OR substr(lease_owner, 1, length(?2) + 1) = ?2 || '/')`,
		now(), owner)
	if err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	return nil
}

// Renew extends a running job's lease; ErrLeaseLost when its claim no
// longer holds it. owner is the claimer's name, for a Job that did not
// come from Claim.
func (s *Store) Renew(ctx context.Context, j Job, owner string, lease time.Duration) error {
	if j.Owner != "" {
		owner = j.Owner
	}
	res, err := s.db.ExecContext(ctx, `
		UPDATE replication_jobs SET lease_until = ?
		WHERE repo_id = ? AND server_id = ? AND state = 'running' AND lease_owner = ?`,
		time.Now().UTC().Add(lease).Format(timeFormat), j.RepoID, j.ServerID, owner)
	if err != nil {
		return fmt.Errorf("renew the lease of %s to %s: %w", j.Repo, j.Server, err)
	}
	j.Owner = owner
	return leaseHeld(res, j)
}
