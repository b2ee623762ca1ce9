-- cpm schema, version 16: access tokens for git over HTTP(S) (the
-- PostgreSQL file of the same version says what each column is for).
-- AUTOINCREMENT: a revoked token's id is never given to another.
CREATE TABLE tokens (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	hash         TEXT NOT NULL UNIQUE,
	kind         TEXT NOT NULL CHECK (kind IN ('user', 'deploy', 'lfs')),
	name         TEXT NOT NULL,
	user_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
	repo_id      INTEGER REFERENCES repos(id) ON DELETE CASCADE,
	read_only    INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
	scoped       INTEGER NOT NULL DEFAULT 0 CHECK (scoped IN (0, 1)),
	created_at   TEXT NOT NULL,
	expires_at   TEXT NOT NULL DEFAULT '',
	last_used_at TEXT NOT NULL DEFAULT '',
	CHECK ((user_id IS NULL) <> (repo_id IS NULL)),
	CHECK (kind <> 'deploy' OR repo_id IS NOT NULL),
	CHECK (kind <> 'user' OR user_id IS NOT NULL)
);
CREATE INDEX tokens_user ON tokens(user_id);
CREATE INDEX tokens_repo ON tokens(repo_id);
CREATE INDEX tokens_kind_expiry ON tokens(kind, expires_at);

CREATE TABLE token_repos (
	token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
	repo_id  INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
	PRIMARY KEY (token_id, repo_id)
) WITHOUT ROWID;
CREATE INDEX token_repos_repo ON token_repos(repo_id);
