package store

import (
	"context"
	"fmt"
	"time"
)

// ClaimBatch leases to owner (a claim's own owner, as Claim returned it
// in Job.Owner) up to limit more due jobs of one server, for a batched
// transfer beside the job that claim took. Only jobs that have not
// failed since their last success are taken (attempts = 0): a job whose
// last attempt failed is retried alone, so that one repository's fault
// does not keep failing a batch. Leases, primaries and SKIP LOCKED work
// as in Claim.
func (s *Store) ClaimBatch(ctx context.Context, owner string, self int64, lease time.Duration, serverID int64, limit int) ([]Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	t := now()
	until := time.Now().UTC().Add(lease).Format(timeFormat)
	_, err := s.db.ExecContext(ctx, `
		UPDATE replication_jobs SET state = 'running', lease_owner = ?, lease_until = ?, pending_since = ''
		WHERE (repo_id, server_id) IN (
			SELECT j.repo_id, j.server_id FROM replication_jobs j
			WHERE j.server_id = ? AND j.state = 'pending' AND j.attempts = 0 AND j.next_attempt_at <= ?
			  AND EXISTS (SELECT 1 FROM repos r WHERE r.id = j.repo_id AND (r.primary_id IS NULL OR r.primary_id = ?))
			ORDER BY j.next_attempt_at LIMIT ?`+s.claimLock()+`)`,
		owner, until, serverID, t, self, limit)
	if err != nil {
		return nil, fmt.Errorf("claim a batch of jobs: %w", err)
	}
	return s.leasedTo(ctx, owner, serverID)
}

// leasedTo lists the running jobs of server that owner holds.
func (s *Store) leasedTo(ctx context.Context, owner string, serverID int64) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, jobSelect+` WHERE j.server_id = ? AND j.state = 'running' AND j.lease_owner = ?
		ORDER BY o.name, r.name`, serverID, owner)
	if err != nil {
		return nil, fmt.Errorf("list a batch of jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list a batch of jobs: %w", err)
		}
		j.Owner = owner
		out = append(out, j)
	}
	return out, rows.Err()
}

// RenewBatch extends the leases of every running job that owner holds,
// in one statement, and returns how many it still holds.
func (s *Store) RenewBatch(ctx context.Context, owner string, lease time.Duration) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE replication_jobs SET lease_until = ? WHERE state = 'running' AND lease_owner = ?`,
		time.Now().UTC().Add(lease).Format(timeFormat), owner)
	if err != nil {
		return 0, fmt.Errorf("renew the leases of a batch: %w", err)
	}
	return res.RowsAffected()
}
