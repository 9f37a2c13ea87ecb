"""Which commits fsync under ``synchronous = FULL``: every group holding a durable transaction
fsyncs its WAL once; a group of leases and attempts only (``durable=False``) does not. The
fsync is the real one; it is only counted."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from service.errors import StoreError
from service.store.database import Database

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files fsynced from now on (by name): the writer calls ``os.fsync``."""
    seen: list[str] = []
    real: Callable[[int], None] = os.fsync

    def counting(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return seen


async def _open(path: Path, synchronous: str) -> Database:
    db = Database(path, synchronous=synchronous)
    await db.open()
    await db.exclusive(lambda conn: conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    return db


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[Database]:
    db = await _open(tmp_path / "f.db", "FULL")
    yield db
    await db.close()


async def _write(db: Database, key: int, *, durable: bool) -> None:
    async with db.transaction(durable=durable) as conn:
        await conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        await asyncio.sleep(0)  # let others join the group


async def test_a_durable_commit_fsyncs_the_wal(full: Database, fsyncs: list[str]) -> None:
    await _write(full, 1, durable=True)
    assert fsyncs == [str(full.path) + "-wal"]


async def test_a_lease_only_commit_does_not_fsync(full: Database, fsyncs: list[str]) -> None:
    await _write(full, 1, durable=False)
    assert fsyncs == []


async def test_a_group_with_one_durable_member_fsyncs_once(
    full: Database, fsyncs: list[str]
) -> None:
    commits: list[str] = []
    full.writer.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    await asyncio.gather(*(_write(full, k, durable=k == 7) for k in range(20)))
    full.writer.set_trace_callback(None)
    # one fsync, for the group that held key 7; none for the others
    assert len(fsyncs) == 1
    assert 1 <= len(commits) < 20


async def test_the_connection_leaves_the_fsync_to_the_group(full: Database) -> None:
    # FULL is kept by the group's own fsync; SQLite's own would fsync every commit
    async with full.writer.execute("PRAGMA synchronous") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    assert row[0] == 1  # NORMAL


async def test_normal_never_fsyncs(tmp_path: Path, fsyncs: list[str]) -> None:
    db = await _open(tmp_path / "n.db", "NORMAL")
    try:
        await _write(db, 1, durable=True)
        await _write(db, 2, durable=False)
    finally:
        await db.close()
    assert fsyncs == []


async def test_a_database_that_cannot_use_wal_is_refused() -> None:
    # An in-memory database keeps journal_mode "memory": what a file system without WAL gives
    db = Database(Path(":memory:"))
    with pytest.raises(StoreError, match="WAL"):
        await db.open()
