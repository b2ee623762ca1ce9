-- cpm schema, version 14: several nodes as one service on one database
-- (the PostgreSQL file of the same version says what each column is
-- for). A cluster needs PostgreSQL, so SQLite keeps its servers.role
-- CHECK (backup, neighbor): a row with the role 'node' never belongs in
-- a SQLite file. The columns exist so that one store API reads both.
ALTER TABLE servers ADD COLUMN heartbeat_at TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN draining INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1));

ALTER TABLE repos ADD COLUMN primary_id INTEGER REFERENCES servers(id) ON DELETE SET NULL;
ALTER TABLE repos ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
CREATE INDEX repos_primary ON repos(primary_id);

ALTER TABLE replication_jobs ADD COLUMN repo_generation INTEGER NOT NULL DEFAULT 0;
