-- Operations: indexes that let /metrics count without reading rows, indexes that let the
-- retention job find what is due without scanning history, and a mark on the rows it emptied.

-- Set when retention emptied the row (events.payload = '', callbacks.body = x'' and
-- headers = '{}'); the row itself, and everything pointing at it, stays.
ALTER TABLE events ADD COLUMN purged_at INTEGER;
ALTER TABLE callbacks ADD COLUMN purged_at INTEGER;

-- Counts by status / outcome read these covering indexes, never the table. The second column
-- of deliveries_by_status answers "oldest pending delivery" with one index seek.
--
-- The tasks and deliveries ones are partial on a condition every row meets (status <> ''), so
-- only a query that repeats that condition (ops_queries) can use them: a plain index on status
-- would win the planner over tasks_due / deliveries_due for the workers' claim queries
-- ("status IN (...) AND next_check_at <= ?"), and each claim would then read every live row
-- and sort it.
CREATE INDEX tasks_by_status ON tasks (status) WHERE status <> '';
CREATE INDEX deliveries_by_status ON deliveries (status, created_at) WHERE status <> '';
CREATE INDEX callbacks_by_outcome ON callbacks (outcome);
-- Live and expired leases on pending deliveries: a handful of rows at any moment (a finished
-- delivery drops its lease), so "how many are claimed" never walks the pending backlog.
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;

-- Retention walks, oldest first, only what it has not purged yet: a purged row leaves these.
CREATE INDEX events_unpurged ON events (created_at) WHERE purged_at IS NULL;
CREATE INDEX callbacks_unpurged ON callbacks (received_at) WHERE purged_at IS NULL;
