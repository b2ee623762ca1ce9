-- LFS lock ids never repeat: with a plain INTEGER PRIMARY KEY SQLite hands
-- out the id of a lock just removed again, so a stale unlock of the old
-- lock could remove the new one. AUTOINCREMENT keeps ids rising; the copy
-- below seeds its sequence with the highest id in use.
CREATE TABLE lfs_locks_new (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	repo_id   INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
	path      TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 4096),
	owner     TEXT NOT NULL,
	locked_at TEXT NOT NULL,
	UNIQUE (repo_id, path)
);
INSERT INTO lfs_locks_new (id, repo_id, path, owner, locked_at)
	SELECT id, repo_id, path, owner, locked_at FROM lfs_locks;
DROP TABLE lfs_locks;
ALTER TABLE lfs_locks_new RENAME TO lfs_locks;
