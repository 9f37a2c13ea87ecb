"""SQL for operations: the counts ``/metrics`` reports and the retention purge.

Every statement here is answered by an index or by the ``status_counts`` table (a few rows kept
by triggers, migration ``0005_status_counts``), so a scrape costs the same at any size of
history; the statements are module constants so ``tests/ops`` can hold each one to its plan.

The purge empties rows in place, oldest first and ``limit`` at a time, and marks them
``purged_at``: a marked row leaves the partial index the next batch walks, so each batch reads
only what it changes (plus the events still held by a pending delivery, which are kept).
"""

from __future__ import annotations

from service.store.base import OpsCounts
from service.store.rows import Sql

#: counts by status (and by outcome for callbacks), kept by triggers (migration 0005; on
#: PostgreSQL in shards, summed here)
STATUS_COUNTS = "SELECT kind, status, SUM(n) AS n FROM status_counts GROUP BY kind, status"
#: delivery attempts by outcome, kept by a trigger (SQLite 0007, PostgreSQL 0002: in shards too)
ATTEMPT_COUNTS = "SELECT outcome, SUM(n) AS n FROM attempt_counts GROUP BY outcome"
OLDEST_PENDING = "SELECT MIN(created_at) AS oldest FROM deliveries WHERE status = 'pending'"
#: what a delivery worker would claim now: due and not under a live lease
QUEUE_DUE = (
    "SELECT COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM deliveries"
    " WHERE status = 'pending' AND next_attempt_at <= ?"
    " AND (lease_until IS NULL OR lease_until <= ?)"
)
QUEUE_CLAIMED = (
    "SELECT COUNT(*) AS n FROM deliveries"
    " WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until > ?"
)
PURGE_EVENTS = (
    "UPDATE events SET payload = '', purged_at = ? WHERE id IN ("
    " SELECT e.id FROM events e WHERE e.purged_at IS NULL AND e.created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending')"
    " ORDER BY e.created_at LIMIT ?)"
)
PURGE_CALLBACKS = (
    "UPDATE callbacks SET body = ?, headers = '{}', purged_at = ? WHERE id IN ("
    " SELECT id FROM callbacks WHERE purged_at IS NULL AND received_at < ?"
    " AND outcome <> 'pending' ORDER BY received_at LIMIT ?)"
)
#: a periodic job's turn: the row moves to now (and says who) only if the last run began at least
#: an interval ago, so of any number of processes asking at once exactly one gets a row count of 1
CLAIM_JOB = (
    "INSERT INTO job_runs (name, last_run_at, owner) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at, owner = excluded.owner"
    " WHERE job_runs.last_run_at <= ?"
)


class OpsQueries(Sql):
    async def ops_counts(self, now_ms: int) -> OpsCounts:
        """Several reads, not one snapshot: good enough for a gauge, and no read transaction
        is held open on the shared reader connection."""
        due = await self._one(QUEUE_DUE, (now_ms, now_ms))
        claimed = await self._one(QUEUE_CLAIMED, (now_ms,))
        oldest = await self._one(OLDEST_PENDING, ())
        counts: dict[str, dict[str, int]] = {"tasks": {}, "callbacks": {}, "deliveries": {}}
        for row in await self._all(STATUS_COUNTS, ()):
            counts[row["kind"]][row["status"]] = int(row["n"])
        attempts = {row["outcome"]: int(row["n"]) for row in await self._all(ATTEMPT_COUNTS, ())}
        mirrors = await self._one("SELECT COUNT(*) AS n FROM mirrors", ())
        return OpsCounts(
            tasks=counts["tasks"],
            callbacks=counts["callbacks"],
            deliveries=counts["deliveries"],
            queue_due=int(due["n"]) if due else 0,
            queue_claimed=int(claimed["n"]) if claimed else 0,
            oldest_pending_at=oldest["oldest"] if oldest else None,
            oldest_due_at=due["oldest"] if due else None,
            attempts=attempts,
            mirror_jobs=int(mirrors["n"]) if mirrors else 0,
        )

    async def claim_job(self, name: str, now_ms: int, every_ms: int, owner: str) -> bool:
        cursor = await self._conn.execute(CLAIM_JOB, (name, now_ms, owner, now_ms - every_ms))
        return cursor.rowcount == 1

    async def purge_event_payloads(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        cursor = await self._conn.execute(PURGE_EVENTS, (now_ms, cutoff_ms, limit))
        return cursor.rowcount

    async def purge_callback_bodies(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        cursor = await self._conn.execute(PURGE_CALLBACKS, (b"", now_ms, cutoff_ms, limit))
        return cursor.rowcount
