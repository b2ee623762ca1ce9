-- cpm schema, version 15: failover (the PostgreSQL file of the same
-- version says what each column is for). Clusters need PostgreSQL; the
-- columns exist so that one store API reads both engines.
ALTER TABLE repos ADD COLUMN move_to INTEGER REFERENCES servers(id) ON DELETE SET NULL;

ALTER TABLE replication_jobs ADD COLUMN diverge_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE diverged_refs (
	repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
	epoch INTEGER NOT NULL,
	ref TEXT NOT NULL,
	object TEXT NOT NULL,
	node TEXT NOT NULL,
	saved_at TEXT NOT NULL,
	PRIMARY KEY (repo_id, epoch, ref)
);
