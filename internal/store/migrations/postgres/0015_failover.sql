-- cpm schema, version 15: failover. A primary whose lease runs out is
-- replaced by its most up-to-date replica; planned handovers (repo move,
-- node drain) go through move_to; a returning old primary's writes that
-- the new primary lacks are kept, not dropped.

-- The node a planned handover moves the repository to (repo move, node
-- drain): its primary hands over once that node holds every push.
ALTER TABLE repos ADD COLUMN move_to BIGINT REFERENCES servers(id) ON DELETE SET NULL;

-- Non-zero on the job of a node that was the repository's primary until
-- that epoch: before the new primary syncs it, the refs it holds that the
-- new primary lacks are saved under refs/cpm/diverged/EPOCH/.
ALTER TABLE replication_jobs ADD COLUMN diverge_epoch BIGINT NOT NULL DEFAULT 0;

-- Refs saved from a returning old primary, for doctor and repo where.
CREATE TABLE diverged_refs (
	repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
	epoch BIGINT NOT NULL,
	ref TEXT NOT NULL,
	object TEXT NOT NULL,
	node TEXT NOT NULL,
	saved_at TEXT NOT NULL,
	PRIMARY KEY (repo_id, epoch, ref)
);
