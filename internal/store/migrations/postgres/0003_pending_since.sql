-- cpm schema, version 3.
-- When the first push after the running sync's snapshot arrived: after
-- that sync, the repository's lag counts from there.
ALTER TABLE replication_jobs ADD COLUMN pending_since TEXT NOT NULL DEFAULT '';
