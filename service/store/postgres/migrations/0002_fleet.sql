-- What the processes sharing this database agree on (SQLite's 0007): periodic jobs run once per
-- interval across the fleet, and delivery attempts counted by outcome, so /metrics agrees
-- whichever process is scraped.

-- One row per periodic job (retention): when it last started and which process ran it. A
-- process runs the job only if its conditional upsert moves last_run_at (ops_queries.CLAIM_JOB);
-- two at once serialise on the row, and the second finds the condition false.
CREATE TABLE job_runs (
    name         TEXT PRIMARY KEY,
    last_run_at  BIGINT NOT NULL,
    owner        TEXT NOT NULL
);

-- Attempts by outcome, kept by a trigger: the verdict is the core's judge() of the status code
-- (2xx delivered, 410 gone, anything else or no answer failed). Sharded by backend like
-- status_counts (0001), so delivery workers on different connections do not queue behind each
-- other's commits on one row; readers sum the shards.
CREATE TABLE attempt_counts (
    outcome  TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'gone')),
    shard    SMALLINT NOT NULL DEFAULT 0,
    n        BIGINT NOT NULL,
    PRIMARY KEY (outcome, shard)
);

INSERT INTO attempt_counts (outcome, n)
    SELECT o.outcome, COUNT(a.id) FROM (VALUES ('delivered'), ('failed'), ('gone')) AS o (outcome)
    LEFT JOIN attempts a ON CASE
        WHEN a.status_code BETWEEN 200 AND 299 THEN 'delivered'
        WHEN a.status_code = 410 THEN 'gone'
        ELSE 'failed' END = o.outcome
    GROUP BY o.outcome;

CREATE FUNCTION attempt_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attempt_counts AS c (outcome, shard, n)
        VALUES (CASE
            WHEN NEW.status_code BETWEEN 200 AND 299 THEN 'delivered'
            WHEN NEW.status_code = 410 THEN 'gone'
            ELSE 'failed' END, pg_backend_pid() % 16, 1)
        ON CONFLICT (outcome, shard) DO UPDATE SET n = c.n + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attempts_counted AFTER INSERT ON attempts
    FOR EACH ROW EXECUTE FUNCTION attempt_counted();
