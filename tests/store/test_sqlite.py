"""The SQLite store on real files: migrations, transactions, and the constraints that back the
ledger's promises even if code above them slips."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.core.credits import CreditEntry, EntryKind
from service.core.ids import new_id
from service.core.ledger import initial_state
from service.core.tasks import Task, TaskSpec
from service.errors import StoreBusy, StoreError
from service.store import migrate as migrate_module
from service.store.base import Account
from service.store.migrate import Migration
from service.store.sqlite import SqliteStore

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer

NOW = 1_780_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "t.db")
    await s.open()
    yield s
    await s.close()


async def _account_with_task(store: SqliteStore) -> tuple[str, str]:
    account = Account(new_id("acct", NOW), "a", NOW)
    task = Task(
        id=new_id("task", NOW),
        account_id=account.id,
        spec=TaskSpec(prompt="p", model="nano-banana", type="text-to-image", provider="simulator"),
        state=initial_state(NOW),
        cost_credits=15,
        refunded_credits=0,
        created_at=NOW,
    )
    async with store.transaction() as tx:
        await tx.insert_account(account)
        await tx.insert_task(task)
    return account.id, task.id


def _entry(account_id: str, kind: EntryKind, delta: int, task_id: str | None) -> CreditEntry:
    return CreditEntry(new_id("cred", NOW), account_id, kind, delta, task_id, NOW)


async def test_open_migrates_once_and_uses_wal(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "m.db")
    assert await first.open() == [
        "0001_initial",
        "0002_upstream",
        "0003_delivery",
        "0004_operations",
        "0005_status_counts",
        "0006_moderation_decisions",
        "0007_fleet",
        "0008_assets",
    ]
    async with first.db.reader.execute("PRAGMA journal_mode") as cur:
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == "wal"
    await first.close()
    again = SqliteStore(tmp_path / "m.db")
    assert await again.open() == []
    await again.close()


async def test_edited_migration_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = SqliteStore(tmp_path / "m.db")
    await s.open()
    await s.close()
    shipped = migrate_module.available()
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in shipped]
    monkeypatch.setattr(migrate_module, "available", lambda: edited)
    with pytest.raises(StoreError, match="changed after it was applied"):
        await SqliteStore(tmp_path / "m.db").open()


async def test_transaction_rolls_back_everything_on_error(store: SqliteStore) -> None:
    account = Account(new_id("acct", NOW), "a", NOW)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.transaction() as tx:
            await tx.insert_account(account)
            await tx.insert_credit_entry(_entry(account.id, EntryKind.GRANT, 50, None))
            raise Boom
    assert await store.get_account(account.id) is None
    assert await store.balance(account.id) == 0


async def test_refund_is_unique_per_task_in_the_schema(store: SqliteStore) -> None:
    account_id, task_id = await _account_with_task(store)
    async with store.transaction() as tx:
        await tx.insert_credit_entry(_entry(account_id, EntryKind.CHARGE, -15, task_id))
        await tx.insert_credit_entry(_entry(account_id, EntryKind.REFUND, 15, task_id))
    with pytest.raises(sqlite3.IntegrityError):
        async with store.transaction() as tx:
            await tx.insert_credit_entry(_entry(account_id, EntryKind.REFUND, 15, task_id))
    with pytest.raises(sqlite3.IntegrityError):
        async with store.transaction() as tx:
            await tx.insert_credit_entry(_entry(account_id, EntryKind.CHARGE, -15, task_id))
    assert await store.balance(account_id) == 0


@pytest.mark.parametrize(
    ("kind", "delta", "with_task"),
    [
        (EntryKind.GRANT, 10, True),  # a grant names no task
        (EntryKind.CHARGE, -10, False),  # a charge always does
        (EntryKind.CHARGE, 10, True),  # a charge takes credits away
        (EntryKind.REFUND, -10, True),  # a refund gives them back
        (EntryKind.GRANT, 0, False),
    ],
)
async def test_entry_shape_is_checked_by_the_schema(
    store: SqliteStore, kind: EntryKind, delta: int, with_task: bool
) -> None:
    account_id, task_id = await _account_with_task(store)
    with pytest.raises(sqlite3.IntegrityError):
        async with store.transaction() as tx:
            await tx.insert_credit_entry(
                _entry(account_id, kind, delta, task_id if with_task else None)
            )


async def test_writes_are_visible_to_the_reader_after_commit(store: SqliteStore) -> None:
    account_id, task_id = await _account_with_task(store)
    task = await store.get_task(account_id, task_id)
    assert task is not None
    assert task.spec.model == "nano-banana"
    assert await store.get_task("acct_other", task_id) is None


async def test_a_write_lock_held_elsewhere_is_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SqliteStore(path, busy_timeout_ms=50)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy):
            async with store.transaction():
                pass
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with store.transaction():  # the lock is free again, and so is ours
        pass
    await store.close()


async def test_a_lease_holds_until_it_expires_and_a_stale_holder_cannot_release(
    store: SqliteStore,
) -> None:
    _, task_id = await _account_with_task(store)  # queued, due at NOW
    [first] = await store.claim_due_tasks(("queued",), NOW, lease_ms=1000, limit=5)
    assert first.task.id == task_id
    assert await store.claim_due_tasks(("queued",), NOW + 999, 1000, 5) == []
    [second] = await store.claim_due_tasks(("queued",), NOW + 1000, 1000, 5)  # lease ran out
    assert second.claim_token != first.claim_token
    async with store.transaction() as tx:
        assert not await tx.release_task(first, NOW + 5000)  # the killed worker came back
        assert await tx.release_task(second, NOW + 5000, submit_attempts=1)
    assert await store.claim_due_tasks(("queued",), NOW + 4999, 1000, 5) == []
    [third] = await store.claim_due_tasks(("queued",), NOW + 5000, 1000, 5)
    assert third.submit_attempts == 1


async def test_claims_only_take_the_asked_statuses_and_never_terminal_tasks(
    store: SqliteStore,
) -> None:
    await _account_with_task(store)
    assert await store.claim_due_tasks(("submitted", "running"), NOW, 1000, 5) == []
    [claimed] = await store.claim_due_tasks(("queued",), NOW, 1000, 5)
    async with store.transaction() as tx:
        await tx.release_task(claimed, None)  # terminal: never due again
    assert await store.claim_due_tasks(("queued",), NOW + 10**9, 1000, 5) == []
