-- SSH certificate authorities whose user certificates authenticate, and
-- the principal that names each user in them (NULL: the user's name).
CREATE TABLE ssh_cas (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
	key_type    TEXT NOT NULL,
	public_key  TEXT NOT NULL,
	fingerprint TEXT NOT NULL UNIQUE,
	created_at  TEXT NOT NULL
);
ALTER TABLE users ADD COLUMN principal TEXT;
CREATE UNIQUE INDEX users_principal ON users (principal) WHERE principal IS NOT NULL;
