-- What several processes sharing one database agree on (the same tables as PostgreSQL's 0002,
-- so both backends answer alike): periodic jobs run once per interval whichever process asks
-- first, and delivery attempts counted by outcome, so /metrics agrees whichever process is
-- scraped.

-- One row per periodic job (retention): when it last started and which process ran it. A
-- process runs the job only if its conditional upsert moves last_run_at (ops_queries.CLAIM_JOB).
CREATE TABLE job_runs (
    name         TEXT PRIMARY KEY,
    last_run_at  INTEGER NOT NULL,
    owner        TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Attempts by outcome, kept by a trigger: the verdict is the core's judge() of the status code
-- (2xx delivered, 410 gone, anything else or no answer failed).
CREATE TABLE attempt_counts (
    outcome  TEXT PRIMARY KEY CHECK (outcome IN ('delivered', 'failed', 'gone')),
    n        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO attempt_counts (outcome, n) VALUES ('delivered', 0), ('failed', 0), ('gone', 0);
UPDATE attempt_counts SET n = (
    SELECT COUNT(*) FROM attempts WHERE CASE
        WHEN status_code BETWEEN 200 AND 299 THEN 'delivered'
        WHEN status_code = 410 THEN 'gone'
        ELSE 'failed' END = attempt_counts.outcome);

CREATE TRIGGER attempts_counted AFTER INSERT ON attempts BEGIN
    UPDATE attempt_counts SET n = n + 1 WHERE outcome = CASE
        WHEN NEW.status_code BETWEEN 200 AND 299 THEN 'delivered'
        WHEN NEW.status_code = 410 THEN 'gone'
        ELSE 'failed' END;
END;
