-- cpm schema, version 5: per-server transfer settings and reconciliation.

-- rsync's compression level for the server; 0 sends uncompressed.
ALTER TABLE servers ADD COLUMN compress_level INTEGER NOT NULL DEFAULT 0 CHECK (compress_level BETWEEN 0 AND 9);

-- When the server's replicas were last compared with the sources (see
-- every_seconds); '' means never.
ALTER TABLE servers ADD COLUMN reconciled_at TEXT NOT NULL DEFAULT '';
