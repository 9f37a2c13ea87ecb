"""asyncpg behind the calling convention the shared queries use (aiosqlite's slice of it).

The query modules (``service.store.queries`` and its siblings) are written once, with ``?``
placeholders, against ``execute`` (awaited, or used with ``async with``), ``executemany`` and a
cursor's ``fetchone`` / ``fetchall`` / ``rowcount``. :class:`PgConnection` gives asyncpg that
shape: placeholders become ``$1, $2, …`` (translated once per statement text and cached, as
asyncpg caches the prepared statement), a statement that returns rows is fetched, and any other
reports its row count from the command tag (``UPDATE 3``).

The target is a pool (each statement on whichever connection is free, in autocommit: plain
reads) or one acquired connection (inside a transaction). Connection failures become
:class:`~service.errors.StoreUnavailable` here, once, so every caller above sees one error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service.errors import StoreBusy, StoreUnavailable

T = TypeVar("T")
#: what statements run on: the pool, or one connection (a pool's proxy for it, or a bare one)
Target = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)

#: what a lost or refused connection raises, from the socket up to asyncpg's own checks
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    TimeoutError,
    # A server that shuts down sends its FATAL to idle sessions too: a statement sent in the
    # moment before the socket's close is seen finds the protocol still consuming that error
    # ("cannot switch to state 12; another operation (2) is in progress"). Seen as 500s on a
    # real restart under load; the connection is as lost as one that was reset.
    asyncpg.InternalClientError,
)


#: the transaction was chosen to be undone so another could go on: retry it
CONFLICT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, bool]:
    """``sql`` with ``?`` placeholders numbered for PostgreSQL, and whether it returns rows.
    A ``?`` inside a quoted literal is left alone."""
    out: list[str] = []
    n = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            n += 1
            out.append(f"${n}")
        else:
            out.append(char)
    return "".join(out), bool(_RETURNS_ROWS.search(sql))


#: how long a unit of work waits for a connection of the pool's, opening one included: past it
#: the database counts as unavailable (every connection hung, or none can be opened)
ACQUIRE_TIMEOUT_S = 10.0


async def unavailable_on_loss(work: Awaitable[T]) -> T:
    """``await work``, a lost database raised as ``StoreUnavailable`` (503, Retry-After)."""
    try:
        return await work
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable(f"The database is unavailable: {type(exc).__name__}.") from exc
    except CONFLICT_ERRORS as exc:
        # The server undid the transaction to break a cycle of waits (or a serialization
        # conflict): nothing was written, and the same request succeeds when tried again.
        raise StoreBusy("The database was busy; retry shortly.") from exc


def is_loss(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection it came from can no longer be trusted."""
    return isinstance(exc, (StoreUnavailable, *CONNECTION_ERRORS))


async def _acquire(pool: asyncpg.Pool) -> PoolConnectionProxy:
    # asyncio.timeout, not acquire(timeout=): asyncpg's wait_for costs a task per acquire
    async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
        return await pool.acquire()


def discard(conn: PoolConnectionProxy) -> None:
    """Close ``conn`` at once rather than return it to the pool for reuse."""
    # a connection that closed mid-way is already back with the pool, detached
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


@asynccontextmanager
async def leased(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy]:
    """One of ``pool``'s connections for one unit of work, the wait for it bounded.

    A connection whose work failed as a lost database (reset, timed out, server gone) is
    terminated, not handed back: asyncpg would otherwise wait for the cancel of a timed-out
    statement and run a reset on it, each a further timeout against a server that does not
    answer. The pool opens a fresh one when it is next needed."""
    conn = await unavailable_on_loss(_acquire(pool))
    try:
        yield conn
    except BaseException as exc:
        if is_loss(exc):
            discard(conn)
        raise
    finally:
        await pool.release(conn)


class PgCursor:
    """A finished statement: its rows (if it returned any) and how many rows it touched."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> asyncpg.Record | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[asyncpg.Record]:
        return self._rows

    async def close(self) -> None:
        pass


class PgResult:
    """What ``execute`` returns: awaited, the cursor; with ``async with``, the cursor."""

    def __init__(self, run: Callable[[], Awaitable[PgCursor]]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return self._run().__await__()

    async def __aenter__(self) -> PgCursor:
        return await self._run()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


class PgConnection:
    """A pool or a connection of asyncpg's, with the shared queries' calling convention."""

    def __init__(self, target: Target) -> None:
        self.raw = target

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> PgResult:
        args = tuple(map(_storable, parameters))
        return PgResult(lambda: unavailable_on_loss(self._execute(sql, args)))

    async def _execute(self, sql: str, args: Sequence[Any]) -> PgCursor:
        if isinstance(self.raw, asyncpg.Pool):
            async with leased(self.raw) as conn:
                return await _run(conn, sql, args)
        return await _run(self.raw, sql, args)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> PgCursor:
        """Many rows through one prepared statement. asyncpg reports no row count for it, so
        statements whose count matters have their own PostgreSQL form (``PgQueries``)."""
        statement, _ = translate(sql)
        rows = [tuple(map(_storable, row)) for row in parameters]
        if not rows:
            return PgCursor([], -1)
        if isinstance(self.raw, asyncpg.Pool):
            async with leased(self.raw) as conn:
                await unavailable_on_loss(conn.executemany(statement, rows))
        else:
            await unavailable_on_loss(self.raw.executemany(statement, rows))
        return PgCursor([], -1)


async def _run(
    conn: asyncpg.Connection | PoolConnectionProxy, sql: str, args: Sequence[Any]
) -> PgCursor:
    statement, returns_rows = translate(sql)
    if returns_rows:
        rows = await conn.fetch(statement, *args)
        return PgCursor(rows, len(rows))
    tag = await conn.execute(statement, *args)
    return PgCursor([], _count(tag))


def _storable(value: Any) -> Any:
    """PostgreSQL's text cannot hold NUL (SQLite's can): it is kept as U+FFFD, the character
    that stands for one that cannot be represented. Text from outside — a provider's failure
    message, a receiver's response body — reaches the database as it came."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):  # the columns of an unnest()
        return [_storable(v) for v in value]
    return value


def _count(tag: str) -> int:
    """The row count at the end of a command tag (``INSERT 0 3``, ``UPDATE 2``), else -1."""
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1
