"""The storage backends the suites run against: SQLite files in ``tmp_path``, and PostgreSQL.

PostgreSQL is the server ``TASKHOOK_TEST_DATABASE_URL`` names (default the local one, trust
auth). A test session makes a fresh database of its own (``th_test_<pid>_<random>``, dropped at
the end) and each test a fresh schema in it, named in the URL's ``search_path``: the service
under test — in this process or in a subprocess given the URL — migrates it from nothing, as a
new deployment does, and sees nothing another test wrote.

``CURRENT`` holds the URL the running test uses (empty: SQLite under the test's data dir);
``tests.conftest.settings_env`` passes it on as ``TASKHOOK_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from service.core.secretbox import SecretBox
from service.store.base import Store
from service.store.postgres.admin import create_database, drop_database, with_database
from service.store.postgres.connection import PgConnection, translate
from service.store.postgres.store import PostgresStore
from service.store.sqlite import SqliteStore

T = TypeVar("T")

SERVER_URL = os.environ.get(
    "TASKHOOK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: set by .ci/run: a run that cannot reach PostgreSQL fails instead of skipping its lane
REQUIRED = os.environ.get("TASKHOOK_REQUIRE_POSTGRES") == "1"
BACKENDS = ("sqlite", "postgres")


def run_sync(work: Coroutine[Any, Any, T]) -> T:
    """``work`` on an event loop of its own, in a thread: usable from a fixture whether or not
    a loop is already running in this one."""
    out: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            out.append(asyncio.run(work))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0]


class SessionDatabase:
    """The session's own database, made on first use; one schema per test in it."""

    def __init__(self, server_url: str = SERVER_URL) -> None:
        self.server_url = server_url
        self.name = f"th_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._made = False
        self._unreachable: str | None = None
        self._schemas = itertools.count(1)

    def unreachable(self) -> str | None:
        """Why PostgreSQL cannot be used (``None`` when it can); the database is made here."""
        if not self._made and self._unreachable is None:
            try:
                run_sync(create_database(self.server_url, self.name))
                self._made = True
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                self._unreachable = f"{type(exc).__name__}: {exc}"
        return self._unreachable

    def new_schema(self) -> str:
        """A fresh, empty schema's URL."""
        schema = f"t{next(self._schemas)}"
        url = with_database(self.server_url, self.name)
        run_sync(_execute(url, f"CREATE SCHEMA {schema}"))
        return with_database(self.server_url, self.name, schema)

    def drop(self) -> None:
        if self._made:
            run_sync(drop_database(self.server_url, self.name))
            self._made = False


async def _execute(url: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


class Current:
    """The running test's database: ``url`` empty for SQLite."""

    def __init__(self) -> None:
        self.url = ""

    @property
    def is_postgres(self) -> bool:
        return bool(self.url)


CURRENT = Current()
SESSION = SessionDatabase()


def make_store(path: Path, *, secrets: SecretBox | None = None, **sqlite: Any) -> Store:
    """A store on the running test's backend: the SQLite file ``path``, or the test's schema.
    ``sqlite`` options (``busy_timeout_ms``…) apply to SQLite alone."""
    if CURRENT.is_postgres:
        return PostgresStore(CURRENT.url, secrets=secrets)
    return SqliteStore(path, secrets=secrets, **sqlite)


# -- reading rows directly, on either backend (tests look at what a request wrote) ------------


async def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """``sql`` (``?`` placeholders) against the test's database: the SQLite file ``path`` or
    the test's PostgreSQL schema; rows as tuples."""
    if CURRENT.is_postgres:
        statement, _ = translate(sql)
        conn = await asyncpg.connect(CURRENT.url, timeout=5)
        try:
            return [tuple(r) for r in await conn.fetch(statement, *args)]
        finally:
            await conn.close()
    import aiosqlite

    async with aiosqlite.connect(path) as db, db.execute(sql, args) as cursor:
        return [tuple(r) for r in await cursor.fetchall()]


async def scalar(path: Path, sql: str, *args: Any) -> Any:
    found = await rows(path, sql, *args)
    return found[0][0] if found else None


async def execute(path: Path, sql: str, *args: Any) -> None:
    """A write outside the service (a test arranging a state the API cannot reach)."""
    if CURRENT.is_postgres:
        statement, _ = translate(sql)
        await _execute(CURRENT.url, statement, *args)
        return
    import aiosqlite

    async with aiosqlite.connect(path) as db:
        await db.execute(sql, args)
        await db.commit()


def reader(store: Store) -> Any:
    """A read connection of ``store``'s, on either backend, with the shared queries' calling
    convention (``async with reader(store).execute(sql, args) as cursor``)."""
    if isinstance(store, PostgresStore):
        return PgConnection(store.pool)
    assert isinstance(store, SqliteStore)
    return store.db.reader


@asynccontextmanager
async def writing(store: Store) -> AsyncIterator[Any]:
    """A raw write transaction on ``store``'s database, either backend (a test arranging a
    state the API cannot reach), with the shared queries' calling convention."""
    if isinstance(store, PostgresStore):
        async with store.pool.acquire() as conn, conn.transaction():
            yield PgConnection(conn)
        return
    assert isinstance(store, SqliteStore)
    async with store.db.transaction() as inline:
        yield inline


def sqlite_store(store: Store) -> SqliteStore:
    """``store`` as the SQLite store it must be (in a ``sqlite_only`` test)."""
    assert isinstance(store, SqliteStore)
    return store
