-- cpm schema, version 4: peers and the metadata that follows repositories.

-- A neighbour's own replication key ("TYPE BASE64"): with it the
-- neighbour may deliver replicas here, once the server is approved.
ALTER TABLE servers ADD COLUMN peer_key TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN peer_fingerprint TEXT NOT NULL DEFAULT '';
CREATE INDEX servers_peer_fingerprint ON servers(peer_fingerprint) WHERE peer_fingerprint <> '';

-- The metadata generation (see MetaGeneration) last delivered to the
-- server: a database snapshot for a backup, authorization metadata for a
-- neighbour.
ALTER TABLE servers ADD COLUMN meta_generation BIGINT NOT NULL DEFAULT 0;

-- The metadata generation: bumped by every change except pushes and syncs
-- (see MetaGeneration); it starts where the audit log is.
INSERT INTO node (key, value)
    SELECT 'meta_generation', CAST(coalesce(max(id), 0) AS TEXT) FROM audit_log
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
