-- Upstream: the submitter's and reconciler's schedule on each task, leases so a killed worker's
-- task is picked up again, and the inbound callback log.

ALTER TABLE tasks ADD COLUMN submit_attempts INTEGER NOT NULL DEFAULT 0;
-- When a worker should next look at the task: submit it (queued) or poll it (submitted,
-- running). NULL once the task is terminal.
ALTER TABLE tasks ADD COLUMN next_check_at INTEGER;
ALTER TABLE tasks ADD COLUMN submitted_at INTEGER;
ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
ALTER TABLE tasks ADD COLUMN claim_token TEXT;
UPDATE tasks SET next_check_at = created_at WHERE status IN ('queued', 'submitted', 'running');
CREATE INDEX tasks_due ON tasks (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE callbacks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    task_id           TEXT NOT NULL REFERENCES tasks (id),
    provider          TEXT NOT NULL,
    provider_task_id  TEXT,
    headers           TEXT NOT NULL,
    body              BLOB NOT NULL,
    -- verified: the signature held; rejected: it did not (kept for inspection, never applied)
    verdict           TEXT NOT NULL CHECK (verdict IN ('verified', 'rejected')),
    outcome           TEXT NOT NULL
                      CHECK (outcome IN ('applied', 'duplicate', 'stale', 'rejected', 'pending')),
    detail            TEXT NOT NULL,
    received_at       INTEGER NOT NULL,
    applied_at        INTEGER
) STRICT;
CREATE INDEX callbacks_by_task ON callbacks (task_id, id);
CREATE INDEX callbacks_by_account ON callbacks (account_id, id);
