-- Git LFS file locks (git lfs lock): one per path of a repository, held
-- by the user who took it, gone with the repository.
CREATE TABLE lfs_locks (
	id        INTEGER PRIMARY KEY,
	repo_id   INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
	path      TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 4096),
	owner     TEXT NOT NULL,
	locked_at TEXT NOT NULL,
	UNIQUE (repo_id, path)
);
