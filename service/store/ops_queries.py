"""SQL for operations: the counts ``/metrics`` reports and the retention purge.

Every statement here is answered by an index (migration ``0004_operations``); the statements are
module constants so ``tests/ops`` can hold each one to its query plan. The counts by status and
outcome are covering-index scans: cheap, but they grow with history (see that migration).

The purge empties rows in place, oldest first and ``limit`` at a time, and marks them
``purged_at``: a marked row leaves the partial index the next batch walks, so each batch reads
only what it changes (plus the events still held by a pending delivery, which are kept).
"""

from __future__ import annotations

from service.store.base import OpsCounts
from service.store.rows import Sql

#: ``status <> ''`` is true of every row; it is here because the indexes are partial on it (so
#: that the workers' claim queries never pick them).
TASKS_BY_STATUS = "SELECT status AS k, COUNT(*) AS n FROM tasks WHERE status <> '' GROUP BY status"
CALLBACKS_BY_OUTCOME = "SELECT outcome AS k, COUNT(*) AS n FROM callbacks GROUP BY outcome"
DELIVERIES_BY_STATUS = (
    "SELECT status AS k, COUNT(*) AS n FROM deliveries WHERE status <> '' GROUP BY status"
)
OLDEST_PENDING = (
    "SELECT MIN(created_at) AS oldest FROM deliveries WHERE status <> '' AND status = 'pending'"
)
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
    "UPDATE callbacks SET body = x'', headers = '{}', purged_at = ? WHERE id IN ("
    " SELECT id FROM callbacks WHERE purged_at IS NULL AND received_at < ?"
    " AND outcome <> 'pending' ORDER BY received_at LIMIT ?)"
)


class OpsQueries(Sql):
    async def ops_counts(self, now_ms: int) -> OpsCounts:
        """Several reads, not one snapshot: good enough for a gauge, and no read transaction
        is held open on the shared reader connection."""
        due = await self._one(QUEUE_DUE, (now_ms, now_ms))
        claimed = await self._one(QUEUE_CLAIMED, (now_ms,))
        oldest = await self._one(OLDEST_PENDING, ())
        return OpsCounts(
            tasks=await self._counts(TASKS_BY_STATUS),
            callbacks=await self._counts(CALLBACKS_BY_OUTCOME),
            deliveries=await self._counts(DELIVERIES_BY_STATUS),
            queue_due=int(due["n"]) if due else 0,
            queue_claimed=int(claimed["n"]) if claimed else 0,
            oldest_pending_at=oldest["oldest"] if oldest else None,
            oldest_due_at=due["oldest"] if due else None,
        )

    async def _counts(self, sql: str) -> dict[str, int]:
        return {row["k"]: int(row["n"]) for row in await self._all(sql, ())}

    async def purge_event_payloads(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        cursor = await self._conn.execute(PURGE_EVENTS, (now_ms, cutoff_ms, limit))
        return cursor.rowcount

    async def purge_callback_bodies(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        cursor = await self._conn.execute(PURGE_CALLBACKS, (now_ms, cutoff_ms, limit))
        return cursor.rowcount
