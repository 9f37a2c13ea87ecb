-- Images are kept (the same tables as PostgreSQL's 0003): every mirrored result and every
-- upload is an asset, its bytes in the asset store under their SHA-256; a mirror job per task
-- whose provider reported success, worked by the mirror loop under a lease like deliveries.

-- kind 'result' (task_id and result_index set, source_url the provider's link) or 'upload'.
-- purged_at: retention deleted the bytes (or their last reference); the metadata stays.
CREATE TABLE assets (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    kind          TEXT NOT NULL CHECK (kind IN ('result', 'upload')),
    task_id       TEXT REFERENCES tasks (id),
    result_index  INTEGER,
    sha256        TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    source_url    TEXT,
    created_at    INTEGER NOT NULL,
    purged_at     INTEGER
) STRICT;

CREATE INDEX assets_by_sha256 ON assets (sha256) WHERE purged_at IS NULL;
CREATE INDEX assets_by_age ON assets (created_at) WHERE purged_at IS NULL;

-- One per task awaiting its results' download; deleted when the task is settled. sources is
-- the provider's results as JSON ([{url, content_type, width, height}]).
CREATE TABLE mirrors (
    task_id          TEXT PRIMARY KEY REFERENCES tasks (id),
    account_id       TEXT NOT NULL,
    sources          TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    claim_token      TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX mirrors_due ON mirrors (next_attempt_at);
