-- Due jobs in the order workers claim them: a claim reads the first
-- entry instead of sorting every due job (BenchmarkEngines,
-- claim-8-workers, with 20,000 jobs due).
CREATE INDEX replication_jobs_next ON replication_jobs(next_attempt_at) WHERE state IN ('pending', 'failed');
