-- cpm schema, version 1.
-- Names are ASCII (see internal/names) and unique without regard to case,
-- so "Acme/Web" and "acme/web" can never be two repositories.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    is_admin   INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at TEXT    NOT NULL
);

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    org_id  INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role    TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE repos (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE RESTRICT,
    name        TEXT    NOT NULL COLLATE NOCASE,
    public      INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    description TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE grants (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    perm    TEXT    NOT NULL CHECK (perm IN ('read', 'write', 'admin')),
    PRIMARY KEY (repo_id, user_id)
) WITHOUT ROWID;
CREATE INDEX grants_user ON grants(user_id);

-- A key belongs to exactly one user or is a deploy key of exactly one
-- repository; the unique fingerprint makes it one or the other, never both.
CREATE TABLE ssh_keys (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT    NOT NULL UNIQUE,
    key_type    TEXT    NOT NULL,
    public_key  TEXT    NOT NULL,
    comment     TEXT    NOT NULL DEFAULT '',
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    repo_id     INTEGER REFERENCES repos(id) ON DELETE CASCADE,
    can_write   INTEGER NOT NULL DEFAULT 0 CHECK (can_write IN (0, 1)),
    created_at  TEXT    NOT NULL,
    CHECK ((user_id IS NULL) <> (repo_id IS NULL)),
    CHECK (user_id IS NULL OR can_write = 0)
);
CREATE INDEX ssh_keys_user ON ssh_keys(user_id);
CREATE INDEX ssh_keys_repo ON ssh_keys(repo_id);

CREATE TABLE protected_refs (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    pattern TEXT    NOT NULL,
    PRIMARY KEY (repo_id, pattern)
) WITHOUT ROWID;

-- Replication targets: backup servers and neighbour peers.
CREATE TABLE servers (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    host          TEXT    NOT NULL,
    port          INTEGER NOT NULL DEFAULT 22 CHECK (port BETWEEN 1 AND 65535),
    ssh_user      TEXT    NOT NULL DEFAULT 'cpm',
    path          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('backup', 'neighbor')),
    host_key      TEXT    NOT NULL DEFAULT '',
    approved      INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    repo_patterns TEXT    NOT NULL DEFAULT '',
    ref_patterns  TEXT    NOT NULL DEFAULT '',
    bwlimit_kbps  INTEGER NOT NULL DEFAULT 0 CHECK (bwlimit_kbps >= 0),
    every_seconds INTEGER NOT NULL DEFAULT 86400 CHECK (every_seconds > 0),
    created_at    TEXT    NOT NULL
);

-- One durable row per repository x target. A push bumps generation; a
-- sync that covered generation G sets synced_generation = G, so any number
-- of pushes during a sync coalesce into the next one.
CREATE TABLE replication_jobs (
    repo_id           INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    server_id         INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    generation        INTEGER NOT NULL DEFAULT 0,
    synced_generation INTEGER NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'running', 'done', 'failed', 'blocked')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT    NOT NULL DEFAULT '',
    lease_owner       TEXT    NOT NULL DEFAULT '',
    lease_until       TEXT    NOT NULL DEFAULT '',
    dirty_since       TEXT    NOT NULL DEFAULT '',
    last_error        TEXT    NOT NULL DEFAULT '',
    last_success_at   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (repo_id, server_id)
) WITHOUT ROWID;
CREATE INDEX replication_jobs_due ON replication_jobs(state, next_attempt_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    remote_addr TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}'
);

-- Facts about this node (its identity for peers, among others).
CREATE TABLE node (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
