-- cpm schema, version 14: several nodes as one service on one database.

-- A node of the cluster is a replication target like a neighbour, with
-- its own role: the primary of a repository copies it to the nodes that
-- hold its replicas with the same workers, queue and ssh. host and port
-- are where the other nodes reach its ssh (init --advertise), peer_key
-- its own replication key.
ALTER TABLE servers DROP CONSTRAINT servers_role_check;
ALTER TABLE servers ADD CONSTRAINT servers_role_check CHECK (role IN ('backup', 'neighbor', 'node'));

-- A node's last heartbeat and the end of its lease (the time up to which
-- it may take writes); draining: its primaries are being moved away.
ALTER TABLE servers ADD COLUMN heartbeat_at TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN draining INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1));

-- Where a repository lives in a cluster: the node that takes its writes
-- (NULL outside a cluster), its generation (bumped by every accepted
-- push) and its epoch (bumped by every change of primary).
ALTER TABLE repos ADD COLUMN primary_id BIGINT REFERENCES servers(id) ON DELETE SET NULL;
ALTER TABLE repos ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX repos_primary ON repos(primary_id);

-- The repository generation that the last verified sync brought to the
-- target (read before the sync's ref snapshot, so never ahead of it).
ALTER TABLE replication_jobs ADD COLUMN repo_generation BIGINT NOT NULL DEFAULT 0;
