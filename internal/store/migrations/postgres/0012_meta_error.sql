-- Why the last delivery of metadata (a backup's database snapshot, a
-- neighbour's authorization metadata) to the server failed; '' once one
-- succeeds. server list, doctor and the metrics show it.
ALTER TABLE servers ADD COLUMN meta_error TEXT NOT NULL DEFAULT '';
