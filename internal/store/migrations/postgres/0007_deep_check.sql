-- The last content check of each replica (sync verify --deep, or the
-- workers' schedule): when, and what it found ('' for nothing wrong).
ALTER TABLE replication_jobs ADD COLUMN deep_checked_at TEXT NOT NULL DEFAULT '';
ALTER TABLE replication_jobs ADD COLUMN deep_result TEXT NOT NULL DEFAULT '';
