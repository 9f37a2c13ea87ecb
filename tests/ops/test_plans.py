"""Query plans: every ``/metrics`` read and every purge batch is answered by an index (or by the
few rows of ``status_counts``), and the indexes migrations 0004 and 0005 added leave the
workers' hot claim queries on their own indexes.

SQLite chooses plans from the schema alone here (nobody runs ``ANALYZE``), so an empty database
shows the plan a large one gets.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.core.events import Event, envelope
from service.core.ids import new_id
from service.outbox import record_event
from service.store import ops_queries as q
from service.store.base import Account
from service.store.sqlite import SqliteStore
from tests.backends import reader
from tests.factories import SECRET_BOX, make_endpoint

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer

#: a table read row by row, with no index at all
BARE_SCAN = re.compile(r"^SCAN (\w+)$")
#: the tables a scan may read: at most a row per kind and status (or outcome), whatever the history
BOUNDED = ("status_counts", "attempt_counts")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "plans.db", secrets=SECRET_BOX)
    await store.open()
    yield store
    await store.close()


async def plan(store: SqliteStore, sql: str, args: tuple[object, ...] = ()) -> list[str]:
    async with reader(store).execute(f"EXPLAIN QUERY PLAN {sql}", args) as cursor:
        return [row[3] for row in await cursor.fetchall()]


@pytest.mark.parametrize(
    ("sql", "args", "expected"),
    [
        (q.STATUS_COUNTS, (), ["SCAN status_counts"]),  # a row per kind and status: bounded
        (q.ATTEMPT_COUNTS, (), ["SCAN attempt_counts"]),  # three rows
        (q.OLDEST_PENDING, (), ["SEARCH deliveries USING INDEX deliveries_pending_by_age"]),
        (q.QUEUE_DUE, (1, 1), ["SEARCH deliveries USING INDEX deliveries_due"]),
        (q.QUEUE_CLAIMED, (1,), ["SEARCH deliveries USING INDEX deliveries_leased"]),
        (
            q.PURGE_EVENTS,
            (1, 1, 10),
            ["SEARCH e USING INDEX events_unpurged", "SEARCH d USING INDEX deliveries_by_event"],
        ),
        (q.PURGE_CALLBACKS, (b"", 1, 1, 10), ["SEARCH callbacks USING INDEX callbacks_unpurged"]),
    ],
)
async def test_ops_queries_use_their_indexes(
    db: SqliteStore, sql: str, args: tuple[object, ...], expected: list[str]
) -> None:
    lines = await plan(db, sql, args)
    unbounded = [line for line in lines if BARE_SCAN.match(line) and not line.endswith(BOUNDED)]
    assert not unbounded, lines
    for part in expected:
        assert any(line.startswith(part) for line in lines), (part, lines)


async def test_no_statement_of_a_claim_reads_a_whole_table(db: SqliteStore) -> None:
    """Every statement a delivery claim runs, with something due to claim: a lookup by a column
    with no index (the claim token, say) would read every delivery ever made."""
    account = Account(new_id("acct", 1), "a", 1)
    payload = envelope("task.succeeded", {}, 1)
    event = Event(new_id("evt", 1), account.id, "task.succeeded", None, payload, 1)
    async with db.transaction() as tx:
        await tx.insert_account(account)
        await tx.insert_endpoint(make_endpoint(account.id, now=1))
        await record_event(tx, event, 1)
    ran: list[str] = []
    db.db.writer.set_trace_callback(ran.append)
    assert len(await db.claim_due_deliveries(2, 1000, 16)) == 1
    db.db.writer.set_trace_callback(None)
    statements = [s for s in ran if s.startswith(("UPDATE", "SELECT"))]
    assert len(statements) == 2, ran
    for sql in statements:
        lines = await plan(db, sql)
        assert not [line for line in lines if BARE_SCAN.match(line)], (sql, lines)


async def test_the_workers_claims_keep_their_own_indexes(db: SqliteStore) -> None:
    """Run the real claims, capture the statements they ran, and read their plans: a plain
    index on ``status`` would be preferred here, and would make each claim read and sort every
    live row."""
    ran: list[str] = []
    db.db.writer.set_trace_callback(ran.append)
    await db.claim_due_tasks(("queued",), 1, 1000, 16)
    await db.claim_due_tasks(("submitted", "running"), 1, 1000, 16)
    await db.claim_due_deliveries(1, 1000, 16)
    claims = [s for s in ran if s.startswith("UPDATE") and "lease_until = " in s]
    assert len(claims) == 3, ran
    plans = [" | ".join(await plan(db, sql)) for sql in claims]
    assert "USING INDEX tasks_due" in plans[0]
    assert "USING INDEX tasks_due" in plans[1]
    assert "USING INDEX deliveries_due" in plans[2]
    for text in plans:
        assert "TEMP B-TREE" not in text, text
        assert "by_status" not in text, text
