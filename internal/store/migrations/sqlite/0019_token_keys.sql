-- cpm schema, version 19: the ssh key a git-lfs-authenticate token was
-- made through (the PostgreSQL file of the same version says why).
ALTER TABLE tokens ADD COLUMN key_id INTEGER REFERENCES ssh_keys(id) ON DELETE CASCADE;
CREATE INDEX tokens_key ON tokens(key_id);
