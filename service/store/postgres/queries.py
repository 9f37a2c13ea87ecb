"""PostgreSQL's own statements: the few where the dialects differ. Everything else is the
shared query modules' text (``service.store.queries`` and siblings), run through
``PgConnection``.

``PgQueries`` serves plain reads; ``PgTxQueries`` runs inside a transaction, where a row read
before it is changed is locked (``FOR NO KEY UPDATE``: it does not block inserts that only
reference the row), and a claim skips rows another worker's open claim holds (``FOR UPDATE
SKIP LOCKED``) rather than waiting for them or taking them too. A transaction that gives the
workers something to do notes it in ``wakes``, notified once it has committed
(``postgres.notify``).
"""

from __future__ import annotations

from collections.abc import Sequence

from service.core.tasks import Task
from service.store.base import Delivery, DeliveryOutcome
from service.store.postgres.notify import DELIVERY, SUBMITTER
from service.store.queries import Queries
from service.store.rows import Connection
from service.store.sealing import StoredSecrets

#: one statement for a batch of finished deliveries, fenced by each claim's token: a worker
#: whose lease ran out and was taken over changes nothing (asyncpg's executemany reports no
#: row count, and the count says whether a claim was lost)
FINISH_DELIVERIES = (
    "UPDATE deliveries AS d SET status = o.status, next_attempt_at = o.next_attempt_at,"
    " attempts = o.attempts, last_status = o.last_status, last_error = o.last_error,"
    " updated_at = o.updated_at, lease_until = NULL, claim_token = NULL"
    " FROM unnest(?::text[], ?::bigint[], ?::int[], ?::int[], ?::text[], ?::bigint[],"
    " ?::text[], ?::text[]) AS o (status, next_attempt_at, attempts, last_status, last_error,"
    " updated_at, id, claim_token)"
    " WHERE d.id = o.id AND d.claim_token = o.claim_token"
)


class PgQueries(Queries):
    """Every query on PostgreSQL, for plain reads (no row locks)."""

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        if not outcomes:
            return 0
        columns = list(
            zip(
                *(
                    (
                        o.status, o.next_attempt_at, o.attempts, o.last_status, o.last_error,
                        o.updated_at, o.claimed.delivery.id, o.claimed.claim_token,
                    )
                    for o in outcomes
                ),
                strict=True,
            )
        )  # fmt: skip
        cursor = await self._conn.execute(FINISH_DELIVERIES, [list(c) for c in columns])
        return cursor.rowcount


class PgTxQueries(PgQueries):
    """Every query inside a PostgreSQL transaction."""

    _row_lock = " FOR NO KEY UPDATE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, conn: Connection, secrets: StoredSecrets | None = None) -> None:
        super().__init__(conn, secrets)
        #: what this transaction woke (``notify.SUBMITTER``, ``notify.DELIVERY``): notified
        #: once it has committed
        self.wakes: set[bytes] = set()

    async def insert_task(self, task: Task) -> None:
        await super().insert_task(task)
        self.wakes.add(SUBMITTER)

    async def insert_deliveries(self, deliveries: list[Delivery]) -> None:
        await super().insert_deliveries(deliveries)
        if deliveries:
            self.wakes.add(DELIVERY)
