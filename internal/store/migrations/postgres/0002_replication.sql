-- cpm schema, version 2: replication state that operators need to see.

-- Why a target is blocked (host key mismatch, authentication refused):
-- it is not retried until an operator acts.
ALTER TABLE servers ADD COLUMN blocked_reason TEXT NOT NULL DEFAULT '';

-- What the last verified sync shipped: the SHA-256 of the sorted
-- `git show-ref --head` lines, and its size.
ALTER TABLE replication_jobs ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE replication_jobs ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
