"""Migrations on either backend: applied once, refused when pending and not wanted, and
concurrent starts (several processes at once) migrating exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.errors import StoreError
from service.store.base import Store
from service.store.postgres.store import PostgresStore
from service.store.sqlite import SqliteStore
from tests import backends


def store_at(path: Path, *, migrate: bool = True) -> Store:
    if backends.CURRENT.is_postgres:
        return PostgresStore(backends.CURRENT.url, migrate=migrate)
    return SqliteStore(path, migrate=migrate)


async def test_a_store_that_may_not_migrate_refuses_pending_migrations(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with pytest.raises(StoreError, match="pending migrations"):
        await store_at(path, migrate=False).open()

    migrating = store_at(path)
    assert await migrating.open()  # something was applied
    await migrating.close()
    again = store_at(path, migrate=False)
    assert await again.open() == []  # up to date: opens, applies nothing
    await again.close()


async def test_concurrent_starts_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    stores = [store_at(path) for _ in range(4)]
    if not backends.CURRENT.is_postgres:  # one SQLite file: one opener at a time
        stores = stores[:1]
    applied = await asyncio.gather(*(s.open() for s in stores))
    try:
        assert sum(1 for a in applied if a) == 1, applied
        counted = await backends.scalar(path, "SELECT COUNT(*) FROM schema_migrations")
        assert counted == len(applied[next(i for i, a in enumerate(applied) if a)])
    finally:
        for s in stores:
            await s.close()
