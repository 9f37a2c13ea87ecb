"""SQLite connections: one writer (writes serialised, transactions explicit) and one reader.

WAL mode lets the reader see the last committed state while the writer works. Every write goes
through :meth:`Database.transaction`, which holds a lock for the whole ``BEGIN IMMEDIATE …
COMMIT``: with a single writer connection, interleaving two transactions would silently merge
them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from service.errors import StoreBusy, StoreError


class Database:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL"):
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._write_lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await _pragma(self._writer, "journal_mode = WAL")
        self._reader = await self._connect()
        await _pragma(self._reader, "query_only = ON")

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await _pragma(conn, f"busy_timeout = {int(self._busy_timeout_ms)}")
        await _pragma(conn, f"synchronous = {self._synchronous}")
        await _pragma(conn, "foreign_keys = ON")
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("the database is not open")
        return self._reader

    @property
    def writer(self) -> aiosqlite.Connection:
        """The writer connection, for migrations; everything else uses ``transaction``."""
        if self._writer is None:
            raise StoreError("the database is not open")
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` if the block raises."""
        async with self._write_lock:
            conn = self.writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreBusy("The database is busy; retry shortly.") from exc
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")


async def _pragma(conn: aiosqlite.Connection, statement: str) -> None:
    # Fetch and close: a PRAGMA's unread result row keeps its statement open, and an open
    # statement holds a lock that makes the next connection's first statement wait.
    async with conn.execute(f"PRAGMA {statement}") as cursor:
        await cursor.fetchall()
