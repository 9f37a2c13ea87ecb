"""``status_counts`` (migration 0005) agrees with the rows it counts: after the migration fills
it from an existing database, and after writes that insert rows and move them between statuses
and outcomes."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from service.core.events import Event, envelope
from service.core.ids import new_id
from service.core.ledger import TaskStatus, initial_state
from service.core.tasks import Task, TaskSpec
from service.outbox import record_event
from service.store import migrate as migrate_module
from service.store.base import Account, CallbackRecord
from service.store.inline import InlineConnection
from service.store.migrate import migrate
from service.store.queries import Queries
from service.store.sealing import StoredSecrets
from tests import backends
from tests.backends import make_store
from tests.factories import SECRET_BOX, make_endpoint

NOW = 1_780_000_000_000

#: what the table must hold: counted from the rows themselves
TRUTH = (
    "SELECT 'tasks', status, COUNT(*) FROM tasks GROUP BY status"
    " UNION ALL SELECT 'callbacks', outcome, COUNT(*) FROM callbacks GROUP BY outcome"
    " UNION ALL SELECT 'deliveries', status, COUNT(*) FROM deliveries GROUP BY status"
)


def _counted(db: Path) -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    if backends.CURRENT.is_postgres:
        stored = backends.run_sync(
            backends.rows(
                db,
                "SELECT kind, status, SUM(n) FROM status_counts GROUP BY 1, 2 HAVING SUM(n) <> 0",
            )
        )
        recount = backends.run_sync(backends.rows(db, TRUTH))
        return {(k, s, int(n)) for k, s, n in stored}, {(k, s, int(n)) for k, s, n in recount}
    conn = sqlite3.connect(db)
    try:
        kept = set(conn.execute("SELECT kind, status, n FROM status_counts WHERE n <> 0"))
        return kept, set(conn.execute(TRUTH))
    finally:
        conn.close()


def _task(account_id: str, n: int) -> Task:
    return Task(
        id=new_id("task", NOW + n), account_id=account_id,
        spec=TaskSpec(prompt="p", model="nano-banana", type="text-to-image", provider="simulator"),
        state=initial_state(NOW), cost_credits=15, refunded_credits=0, created_at=NOW,
    )  # fmt: skip


def _callback(task: Task, outcome: str, n: int) -> CallbackRecord:
    return CallbackRecord(
        id=new_id("cb", NOW + n), account_id=task.account_id, task_id=task.id,
        provider="simulator", provider_task_id=None, headers={}, body=b"{}",
        verdict="verified", outcome=outcome, detail="", received_at=NOW,
    )  # fmt: skip


async def _history(tx: Queries) -> str:
    """Tasks, callbacks and deliveries in several statuses, some of them moved; returns the id
    of a callback still ``pending``."""
    account = Account(new_id("acct", NOW), "a", NOW)
    await tx.insert_account(account)
    endpoint = make_endpoint(account.id, now=NOW)
    await tx.insert_endpoint(endpoint)
    for n in range(6):
        task = _task(account.id, n)
        await tx.insert_task(task)
        await tx.insert_callback(_callback(task, "applied" if n % 2 else "duplicate", n))
        if n % 3 == 0:
            state = replace(task.state, status=TaskStatus.SUCCEEDED, progress=100)
            await tx.update_task(replace(task, state=state))
        payload = envelope("task.succeeded", {}, NOW)
        event = Event(new_id("evt", NOW + n), account.id, "task.succeeded", task.id, payload, NOW)
        await record_event(tx, event, NOW)
    await tx.fail_pending_deliveries(endpoint.id, "gone", NOW)
    pending = _task(account.id, 99)
    await tx.insert_task(pending)
    waiting = _callback(pending, "pending", 99)
    await tx.insert_callback(waiting)
    return waiting.id


async def test_writes_keep_the_counts(tmp_path: Path) -> None:
    store = make_store(tmp_path / "c.db", secrets=SECRET_BOX)
    await store.open()
    try:
        async with store.transaction() as tx:
            assert isinstance(tx, Queries)
            waiting = await _history(tx)
            await tx.set_callback_outcome(waiting, "applied", "", NOW)
    finally:
        await store.close()
    kept, truth = _counted(tmp_path / "c.db")
    assert kept == truth
    assert ("deliveries", "failed", 6) in kept
    assert ("tasks", "succeeded", 2) in kept
    assert ("callbacks", "applied", 4) in kept


@pytest.mark.sqlite_only  # SQLite's migration 0005 on existing rows
async def test_the_migration_counts_what_is_already_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "old.db"
    before = [m for m in migrate_module.available() if m.version < 5]
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(migrate_module, "available", lambda: before)
            migrate(conn)  # a database as 0004 left it: no table, no triggers
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        await _history(Queries(InlineConnection(conn), StoredSecrets(SECRET_BOX)))
        conn.execute("COMMIT")
        assert migrate(conn)[0] == "0005_status_counts"  # and any later ones
    finally:
        conn.close()
    kept, truth = _counted(db)
    assert kept == truth
    assert ("deliveries", "failed", 6) in kept
