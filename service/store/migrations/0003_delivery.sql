-- Downstream: subscriber endpoints, one delivery per (event, endpoint), and every attempt.

CREATE TABLE endpoints (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL REFERENCES accounts (id),
    url                       TEXT NOT NULL,
    description               TEXT NOT NULL DEFAULT '',
    -- JSON array of event types; NULL subscribes to every type
    event_types               TEXT,
    enabled                   INTEGER NOT NULL DEFAULT 1,
    disabled_reason           TEXT,
    -- Signing keys must be usable, so they cannot be hashed: whsec_… as issued.
    secret                    TEXT NOT NULL,
    previous_secret           TEXT,
    previous_secret_until     INTEGER,
    -- start of the current run of failed attempts (NULL while healthy)
    failing_since             INTEGER,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    deleted_at                INTEGER
) STRICT;
CREATE INDEX endpoints_by_account ON endpoints (account_id, id);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id),
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id),
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    claim_token      TEXT,
    -- 1 for a replay or recovery an operator asked for
    manual           INTEGER NOT NULL DEFAULT 0,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id, id);

CREATE TABLE attempts (
    id             TEXT PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES deliveries (id),
    number         INTEGER NOT NULL,
    status_code    INTEGER,
    latency_ms     INTEGER NOT NULL,
    response_body  TEXT NOT NULL DEFAULT '',
    error          TEXT,
    manual         INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, id);
