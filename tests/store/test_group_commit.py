"""Group commit on a real file: transactions that queue together share one COMMIT, each is
durable before its block is left, and one that raises is undone alone."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.errors import StoreError
from service.store.database import Database

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "g.db")
    await database.open()
    await database.exclusive(
        lambda conn: conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    )
    yield database
    await database.close()


def _on_disk(path: Path) -> set[int]:
    """What another process would see: a fresh connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT k FROM t")}
    finally:
        conn.close()


async def _write(db: Database, key: int, seen: list[tuple[int, set[int]]] | None = None) -> None:
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t (k, v) VALUES (?, 'x')", (key,))
        await asyncio.sleep(0)  # let others queue behind this one
    if seen is not None:
        seen.append((key, _on_disk(db.path)))


async def test_queued_transactions_share_commits_and_each_is_durable_when_its_block_ends(
    db: Database,
) -> None:
    commits: list[str] = []
    db.writer.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    seen: list[tuple[int, set[int]]] = []
    await asyncio.gather(*(_write(db, k, seen) for k in range(200)))
    db.writer.set_trace_callback(None)

    assert _on_disk(db.path) == set(range(200))
    # Every block ended only once its own row could be read from another connection.
    assert len(seen) == 200
    assert all(key in rows for key, rows in seen)
    assert 1 <= len(commits) < 20, len(commits)


async def test_a_transaction_that_raises_is_undone_alone(db: Database) -> None:
    class Boom(Exception):
        pass

    async def failing() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t (k, v) VALUES (1000, 'doomed')")
            await asyncio.sleep(0)
            raise Boom

    results = await asyncio.gather(
        _write(db, 1), failing(), _write(db, 2), _write(db, 3), return_exceptions=True
    )
    assert [type(r) for r in results] == [type(None), Boom, type(None), type(None)]
    assert _on_disk(db.path) == {1, 2, 3}


async def test_a_constraint_error_in_one_leaves_the_group_intact(db: Database) -> None:
    async def duplicate() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t (k, v) VALUES (7, 'second')")

    await _write(db, 7)
    results = await asyncio.gather(
        _write(db, 8), duplicate(), _write(db, 9), return_exceptions=True
    )
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert _on_disk(db.path) == {7, 8, 9}


async def test_a_caller_cancelled_while_queued_does_not_strand_the_group(db: Database) -> None:
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t (k, v) VALUES (1, 'x')")
            first_in.set()
            await release.wait()

    holding = asyncio.create_task(holder())
    await first_in.wait()
    queued = asyncio.create_task(_write(db, 2))
    await asyncio.sleep(0.01)
    queued.cancel()  # holder now sees someone queued, and then no one
    release.set()
    await asyncio.wait_for(holding, 5)
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert _on_disk(db.path) == {1}
    await asyncio.wait_for(_write(db, 3), 5)  # the lock was handed on
    assert _on_disk(db.path) == {1, 3}


async def test_a_caller_cancelled_while_its_group_commits_still_has_its_row(db: Database) -> None:
    writing = asyncio.create_task(_write(db, 5))
    await asyncio.sleep(0)
    for _ in range(1000):  # until the block is done and its commit handed to a task
        if db._committing:
            break
        await asyncio.sleep(0)
    assert db._committing
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await asyncio.wait_for(_write(db, 6), 5)
    assert _on_disk(db.path) == {5, 6}


async def test_a_failed_commit_fails_every_member_of_the_group(db: Database) -> None:
    # A deferred foreign key is checked only at COMMIT: the group's COMMIT fails as a whole.
    await db.exclusive(
        lambda conn: conn.execute(
            "CREATE TABLE child (k INTEGER PRIMARY KEY,"
            " parent INTEGER REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)"
        )
    )

    async def orphan() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO child (k, parent) VALUES (1, 999)")
            await asyncio.sleep(0)

    results = await asyncio.gather(_write(db, 1), orphan(), _write(db, 2), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    assert _on_disk(db.path) == set()
    await _write(db, 3)  # the writer is usable again
    assert _on_disk(db.path) == {3}


async def test_a_write_lock_held_by_another_process_is_waited_for_off_the_loop(
    db: Database,
) -> None:
    """Another connection holds the write lock for a while: the transaction waits for it (in the
    writer's thread), and the event loop keeps running meanwhile."""
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def let_go() -> None:
        await asyncio.sleep(0.2)
        other.execute("ROLLBACK")

    clock = asyncio.create_task(ticking())
    try:
        await asyncio.gather(_write(db, 1), let_go())
    finally:
        clock.cancel()
        other.close()
    assert _on_disk(db.path) == {1}
    assert ticks >= 10  # the loop was not blocked while the lock was held


async def test_the_first_of_a_group_that_raises_is_undone_and_those_queued_behind_commit(
    db: Database,
) -> None:
    class Boom(Exception):
        pass

    first_in = asyncio.Event()

    async def failing_first() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t (k, v) VALUES (1000, 'doomed')")
            first_in.set()
            await asyncio.sleep(0.01)  # the others queue behind it meanwhile
            raise Boom

    failing = asyncio.create_task(failing_first())
    await first_in.wait()
    results = await asyncio.gather(
        failing, _write(db, 1), _write(db, 2), _write(db, 3), return_exceptions=True
    )
    assert [type(r) for r in results] == [Boom, type(None), type(None), type(None)]
    assert _on_disk(db.path) == {1, 2, 3}
    await asyncio.wait_for(_write(db, 4), 5)
    assert _on_disk(db.path) == {1, 2, 3, 4}
    # Alone, with no one behind it: its rollback lets SQLite's write lock go at once.
    first_in.clear()
    with pytest.raises(Boom):
        await failing_first()
    other = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_only_the_later_members_of_a_group_take_a_savepoint(db: Database) -> None:
    """A savepoint's journal copies every page its member changes; the first member, alone in
    the transaction, has nothing to keep apart from."""
    seen: list[str] = []
    db.writer.set_trace_callback(seen.append)
    try:
        await _write(db, 1)
        alone = [sql for sql in seen if sql.startswith(("SAVEPOINT", "BEGIN"))]
        seen.clear()
        await asyncio.gather(*(_write(db, k) for k in range(10, 20)))
    finally:
        db.writer.set_trace_callback(None)
    assert alone == ["BEGIN IMMEDIATE"]
    groups = seen.count("BEGIN IMMEDIATE")
    assert seen.count("SAVEPOINT tx") == 10 - groups
    assert _on_disk(db.path) == {1, *range(10, 20)}


@pytest.mark.parametrize("seed", range(6))
async def test_random_yields_failures_and_cancellations_lose_nothing_and_strand_no_one(
    db: Database, seed: int
) -> None:
    """Many transactions at once, some waiting inside their block, some raising, some cancelled
    at a random moment: every block that ended normally has its row on disk, none that raised
    does, and the writer is free afterwards."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret

    class Boom(Exception):
        pass

    async def one(key: int, mode: str) -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, mode))
            if mode in ("wait", "raise"):
                await asyncio.sleep(rng.choice((0, 0.001)))
            if mode == "raise":
                raise Boom

    modes = {key: rng.choice(("plain", "plain", "wait", "raise", "cancel")) for key in range(120)}
    tasks = {key: asyncio.create_task(one(key, mode)) for key, mode in modes.items()}
    for key, mode in modes.items():
        if mode == "cancel":
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            tasks[key].cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 10)

    on_disk = _on_disk(db.path)
    for (key, mode), result in zip(modes.items(), results, strict=True):
        if result is None:
            assert key in on_disk, (key, mode)
        elif isinstance(result, Boom):
            assert key not in on_disk, (key, mode)
        else:
            assert isinstance(result, asyncio.CancelledError), (key, mode, result)
    await asyncio.wait_for(_write(db, 1000), 5)
    assert 1000 in _on_disk(db.path)
    assert not db._lock.locked()
