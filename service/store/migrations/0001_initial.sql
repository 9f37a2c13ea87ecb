-- The foundation: accounts, keys, the task ledger, credits, the event outbox, idempotency keys
-- and the moderation log. Times are unix milliseconds; ids are time-ordered prefixed strings, so
-- "newest first" is ORDER BY id DESC on an index.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    prefix      TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    status            TEXT NOT NULL
                      CHECK (status IN ('queued', 'submitted', 'running', 'succeeded', 'failed')),
    progress          INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    sequence          INTEGER NOT NULL,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    provider_task_id  TEXT,
    type              TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    params            TEXT NOT NULL,
    results           TEXT NOT NULL DEFAULT '[]',
    failure_code      TEXT,
    failure_message   TEXT,
    cost_credits      INTEGER NOT NULL,
    refunded_credits  INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    completed_at      INTEGER
) STRICT;
CREATE INDEX tasks_by_account ON tasks (account_id, id);
CREATE INDEX tasks_by_account_status ON tasks (account_id, status, id);
CREATE INDEX tasks_by_account_model ON tasks (account_id, model, id);

CREATE TABLE credit_entries (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    kind        TEXT NOT NULL CHECK (kind IN ('grant', 'charge', 'refund')),
    delta       INTEGER NOT NULL,
    task_id     TEXT REFERENCES tasks (id),
    created_at  INTEGER NOT NULL,
    CHECK ((kind = 'grant') = (task_id IS NULL)),
    CHECK ((kind = 'charge' AND delta <= 0) OR (kind <> 'charge' AND delta > 0))
) STRICT;
CREATE INDEX credit_entries_by_account ON credit_entries (account_id, id, delta);
-- A task is charged once and refunded at most once, whatever the code above does.
CREATE UNIQUE INDEX credit_entries_once_per_task ON credit_entries (task_id, kind)
    WHERE task_id IS NOT NULL;

CREATE TABLE timeline (
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    status      TEXT NOT NULL,
    progress    INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX timeline_by_task ON timeline (task_id, id);

-- The outbox: one row per event, its payload the exact bytes every delivery will send.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    type        TEXT NOT NULL,
    task_id     TEXT,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX events_by_account ON events (account_id, id);
CREATE INDEX events_by_account_type ON events (account_id, type, id);

CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) STRICT, WITHOUT ROWID;

-- Blocked prompts, for review. The prompt itself is kept only as a hash.
CREATE TABLE moderation_log (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    rule_id        TEXT NOT NULL,
    category       TEXT NOT NULL,
    prompt_sha256  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX moderation_log_by_account ON moderation_log (account_id, id);
