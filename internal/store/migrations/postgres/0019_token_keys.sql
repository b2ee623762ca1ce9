-- cpm schema, version 19: the ssh key a git-lfs-authenticate token (kind
-- lfs) was made through. Removing the key removes its tokens at once (a
-- deploy key's, and a user's made over that key); a deploy key's token
-- writes only while its key may (read at each use, not copied).
ALTER TABLE tokens ADD COLUMN key_id BIGINT REFERENCES ssh_keys(id) ON DELETE CASCADE;
CREATE INDEX tokens_key ON tokens(key_id);
