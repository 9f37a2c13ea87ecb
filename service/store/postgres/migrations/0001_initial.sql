-- PostgreSQL's schema: the state SQLite reaches after its migrations 0001-0006, in one step.
-- Column names and meanings are SQLite's, so the statements both dialects share read the same
-- rows; times are unix milliseconds (BIGINT), flags are 0/1 integers, JSON is kept as text.
-- Tables whose rows are listed "in insertion order" (SQLite's rowid) carry an identity column
-- named rowid for the same purpose.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    prefix      TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    status            TEXT NOT NULL
                      CHECK (status IN ('queued', 'submitted', 'running', 'succeeded', 'failed')),
    progress          INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    sequence          BIGINT NOT NULL,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    provider_task_id  TEXT,
    type              TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    params            TEXT NOT NULL,
    results           TEXT NOT NULL DEFAULT '[]',
    failure_code      TEXT,
    failure_message   TEXT,
    cost_credits      BIGINT NOT NULL,
    refunded_credits  BIGINT NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    completed_at      BIGINT,
    submit_attempts   INTEGER NOT NULL DEFAULT 0,
    -- when a worker should next look at the task (submit or poll); NULL once terminal
    next_check_at     BIGINT,
    submitted_at      BIGINT,
    lease_until       BIGINT,
    claim_token       TEXT
);
CREATE INDEX tasks_by_account ON tasks (account_id, id);
CREATE INDEX tasks_by_account_status ON tasks (account_id, status, id);
CREATE INDEX tasks_by_account_model ON tasks (account_id, model, id);
CREATE INDEX tasks_due ON tasks (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE credit_entries (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    kind        TEXT NOT NULL CHECK (kind IN ('grant', 'charge', 'refund')),
    delta       BIGINT NOT NULL,
    task_id     TEXT REFERENCES tasks (id),
    created_at  BIGINT NOT NULL,
    CHECK ((kind = 'grant') = (task_id IS NULL)),
    CHECK ((kind = 'charge' AND delta <= 0) OR (kind <> 'charge' AND delta > 0))
);
CREATE INDEX credit_entries_by_account ON credit_entries (account_id, id, delta);
-- A task is charged once and refunded at most once, whatever the code above does.
CREATE UNIQUE INDEX credit_entries_once_per_task ON credit_entries (task_id, kind)
    WHERE task_id IS NOT NULL;

CREATE TABLE timeline (
    rowid       BIGINT GENERATED ALWAYS AS IDENTITY,
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    status      TEXT NOT NULL,
    progress    INTEGER NOT NULL,
    sequence    BIGINT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX timeline_by_task ON timeline (task_id, rowid);

-- The outbox: one row per event, its payload the exact bytes every delivery will send.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    type        TEXT NOT NULL,
    task_id     TEXT,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    purged_at   BIGINT
);
CREATE INDEX events_by_account ON events (account_id, id);
CREATE INDEX events_by_account_type ON events (account_id, type, id);
CREATE INDEX events_unpurged ON events (created_at) WHERE purged_at IS NULL;

CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE TABLE callbacks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    task_id           TEXT NOT NULL REFERENCES tasks (id),
    provider          TEXT NOT NULL,
    provider_task_id  TEXT,
    headers           TEXT NOT NULL,
    body              BYTEA NOT NULL,
    verdict           TEXT NOT NULL CHECK (verdict IN ('verified', 'rejected')),
    outcome           TEXT NOT NULL
                      CHECK (outcome IN ('applied', 'duplicate', 'stale', 'rejected', 'pending')),
    detail            TEXT NOT NULL,
    received_at       BIGINT NOT NULL,
    applied_at        BIGINT,
    purged_at         BIGINT
);
CREATE INDEX callbacks_by_task ON callbacks (task_id, id);
CREATE INDEX callbacks_by_account ON callbacks (account_id, id);
CREATE INDEX callbacks_unpurged ON callbacks (received_at) WHERE purged_at IS NULL;

CREATE TABLE endpoints (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL REFERENCES accounts (id),
    url                       TEXT NOT NULL,
    description               TEXT NOT NULL DEFAULT '',
    event_types               TEXT,
    enabled                   INTEGER NOT NULL DEFAULT 1,
    disabled_reason           TEXT,
    -- sealed (service.store.sealing): never whsec_… in the clear
    secret                    TEXT NOT NULL,
    previous_secret           TEXT,
    previous_secret_until     BIGINT,
    failing_since             BIGINT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    deleted_at                BIGINT
);
CREATE INDEX endpoints_by_account ON endpoints (account_id, id);

CREATE TABLE deliveries (
    rowid            BIGINT GENERATED ALWAYS AS IDENTITY,
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id),
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id),
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    claim_token      TEXT,
    manual           INTEGER NOT NULL DEFAULT 0,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id, id);
CREATE INDEX deliveries_pending_by_age ON deliveries (created_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;

CREATE TABLE attempts (
    rowid          BIGINT GENERATED ALWAYS AS IDENTITY,
    id             TEXT PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES deliveries (id),
    number         INTEGER NOT NULL,
    status_code    INTEGER,
    latency_ms     BIGINT NOT NULL,
    response_body  TEXT NOT NULL DEFAULT '',
    error          TEXT,
    manual         INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, id);

CREATE TABLE moderation_decisions (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    key_id         TEXT REFERENCES api_keys (id),
    verdict        TEXT NOT NULL CHECK (verdict IN ('allowed', 'blocked')),
    stage          TEXT NOT NULL CHECK (stage IN ('rules', 'external')),
    rule_id        TEXT,
    category       TEXT,
    error          TEXT,
    prompt_sha256  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    CHECK (verdict = 'blocked' OR category IS NULL)
);
CREATE INDEX moderation_decisions_by_account ON moderation_decisions (account_id, id);
CREATE INDEX moderation_blocks_by_account ON moderation_decisions (account_id, id)
    WHERE verdict = 'blocked';
CREATE INDEX moderation_blocks_by_account_category ON moderation_decisions
    (account_id, category, id) WHERE category IS NOT NULL;
CREATE INDEX moderation_blocks ON moderation_decisions (id) WHERE verdict = 'blocked';
CREATE INDEX moderation_blocks_by_category ON moderation_decisions (category, id)
    WHERE category IS NOT NULL;

-- Counts by status and outcome for /metrics, kept by triggers (SQLite's 0005). Each trigger is
-- one statement: the row leaving a status and the row entering one are a single upsert. The
-- counts are sharded by the connection's backend: a count row is locked from the upsert to the
-- COMMIT, and with one row per status every callback on every connection would queue behind
-- the others' commits. Readers sum the shards.
CREATE TABLE status_counts (
    kind    TEXT NOT NULL CHECK (kind IN ('tasks', 'callbacks', 'deliveries')),
    status  TEXT NOT NULL,
    shard   SMALLINT NOT NULL DEFAULT 0,
    n       BIGINT NOT NULL,
    PRIMARY KEY (kind, status, shard)
);

CREATE FUNCTION status_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- tasks and deliveries count by status (TG_ARGV[0] names the kind)
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    INSERT INTO status_counts AS c (kind, status, shard, n)
        SELECT TG_ARGV[0], s, pg_backend_pid() % 16, d FROM (VALUES
            (CASE WHEN TG_OP <> 'INSERT' THEN OLD.status END, -1),
            (CASE WHEN TG_OP <> 'DELETE' THEN NEW.status END, 1)) AS v (s, d)
        WHERE s IS NOT NULL
        ON CONFLICT (kind, status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION outcome_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.outcome IS NOT DISTINCT FROM NEW.outcome THEN
        RETURN NULL;
    END IF;
    INSERT INTO status_counts AS c (kind, status, shard, n)
        SELECT 'callbacks', s, pg_backend_pid() % 16, d FROM (VALUES
            (CASE WHEN TG_OP <> 'INSERT' THEN OLD.outcome END, -1),
            (CASE WHEN TG_OP <> 'DELETE' THEN NEW.outcome END, 1)) AS v (s, d)
        WHERE s IS NOT NULL
        ON CONFLICT (kind, status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_counted AFTER INSERT OR DELETE OR UPDATE OF status ON tasks
    FOR EACH ROW EXECUTE FUNCTION status_counted('tasks');
CREATE TRIGGER callbacks_counted AFTER INSERT OR DELETE OR UPDATE OF outcome ON callbacks
    FOR EACH ROW EXECUTE FUNCTION outcome_counted();
CREATE TRIGGER deliveries_counted AFTER INSERT OR DELETE OR UPDATE OF status ON deliveries
    FOR EACH ROW EXECUTE FUNCTION status_counted('deliveries');
