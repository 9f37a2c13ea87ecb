"""The writer's connection: SQLite statements run inline, on the event loop's thread.

aiosqlite sends every statement to its own thread and back: about 85 µs a statement on this
hardware, where the statement itself takes 1 to 2 µs. A callback's transaction is a dozen
statements, so the hops, not SQLite, set the ceiling. Inside a transaction the writer already
holds SQLite's write lock (``BEGIN IMMEDIATE``), and in WAL mode nothing it then runs waits for
another connection: running those statements inline is safe and two orders of magnitude
cheaper. What can wait — taking the lock, and the fsync of ``COMMIT`` — still runs in a thread
(see ``Database``).

The surface mirrors the slice of aiosqlite the queries use (``execute`` awaited or used with
``async with``, ``executemany``, ``fetchone``/``fetchall``, ``rowcount``), so the same query
code serves the aiosqlite reader and this writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any


class InlineCursor:
    """A finished statement's cursor; the ``async`` methods return at once."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._cursor.fetchone()
        return row

    async def fetchall(self) -> list[sqlite3.Row]:
        return list(self._cursor.fetchall())

    async def close(self) -> None:
        self._cursor.close()


class InlineResult:
    """What ``execute`` returns: awaited, the cursor; with ``async with``, the cursor, closed
    on exit — as aiosqlite's."""

    def __init__(self, cursor: InlineCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._ready().__await__()

    async def _ready(self) -> InlineCursor:
        return self._cursor

    async def __aenter__(self) -> InlineCursor:
        return self._cursor

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cursor.close()


class InlineConnection:
    """A ``sqlite3`` connection with aiosqlite's calling convention and none of its hops."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> InlineResult:
        return InlineResult(InlineCursor(self.raw.execute(sql, tuple(parameters))))

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> InlineCursor:
        return InlineCursor(self.raw.executemany(sql, (tuple(row) for row in parameters)))

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        self.raw.set_trace_callback(callback)
