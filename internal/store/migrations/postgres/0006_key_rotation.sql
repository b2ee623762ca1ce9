-- cpm schema, version 6: replication key rotation.

-- Where a backup's authorized_keys is, relative to the ssh user's home
-- (or absolute): rotation installs the new key there and removes the old.
ALTER TABLE servers ADD COLUMN authorized_keys TEXT NOT NULL DEFAULT '.ssh/authorized_keys';

-- During a rotation: '' the server knows only the current key; 'next' it
-- accepts the new key (cpm uses it there); 'done' the old key is gone
-- from it.
ALTER TABLE servers ADD COLUMN key_state TEXT NOT NULL DEFAULT '' CHECK (key_state IN ('', 'next', 'done'));
