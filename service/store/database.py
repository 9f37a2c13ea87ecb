"""SQLite connections: one writer with group commit, and readers.

Statements run inline, on the event loop's thread (see ``inline``): an indexed read or write
takes a few microseconds, where a hop to a thread and back costs far more, and under load each
hop waits its turn for a core. Only what can *wait* leaves the loop: taking SQLite's write lock
when another process holds it, the fsync of ``COMMIT``, and reads that walk many rows (the
``/metrics`` queue depth, which walks the backlog; a recovery's event list), which use
``scan_reader`` (aiosqlite, its own thread). WAL mode lets readers see the last committed
state while the writer works.

Every write goes through :meth:`Database.transaction`, which holds a lock for the body of one
transaction (``Turns``: those queued behind a commit run back to back, not one per loop pass).
The first transaction of a group takes SQLite's write lock (``BEGIN IMMEDIATE``: inline when it
is free, else in the writer's thread, which may wait up to the busy timeout); each later one is
a ``SAVEPOINT`` inside the group, so one that raises is undone alone (the first needs none: if
it raises, the transaction holds nothing else and is rolled back); when no other transaction is
queued for the lock, one ``COMMIT`` — one fsync, in the writer's thread — makes the whole group
durable. Nobody's ``transaction()`` block is left before that ``COMMIT`` succeeded: a 2xx sent
after it still means the row is on disk. Under load, the transactions that queued while one
group committed form the next group, so the number of fsyncs per second stays flat as requests
grow.

Not every write needs its fsync. A lease taken by a claim, or an attempt recorded by the delivery
worker, is safe to lose in a power cut: the lease runs out, the delivery is sent again with the
same ``webhook-id``. Such transactions say ``durable=False``. With ``synchronous = FULL`` the
connection itself runs at ``NORMAL`` (in WAL mode: no fsync at commit), and a group that holds
any durable transaction fsyncs the WAL after its ``COMMIT`` — what ``FULL`` does — so only groups
of leases and attempts skip it. The WAL is one file written in order, so the next durable commit
makes everything before it durable too: nothing is reordered, only acknowledged later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from service.errors import StoreBusy, StoreError
from service.store.inline import InlineConnection
from service.store.permissions import create_private_database, secure_data_dir
from service.store.turns import Turn, Turns

T = TypeVar("T")
_POLL_S = 0.0002


class Database:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL"):
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._lock = Turns()  # members queued behind a commit run back to back
        self._queued = 0  # transactions waiting for the lock
        self._group: asyncio.Future[None] | None = None  # the open group's outcome
        self._committer_for: asyncio.Future[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self._changes_at_begin = 0
        self._group_durable = False  # any member of the open group asked for durability
        #: FULL is kept by fsyncing the WAL after a durable group's COMMIT (see above)
        self._fsync_wal = synchronous == "FULL"
        self._thread: ThreadPoolExecutor | None = None
        self._writer: InlineConnection | None = None
        self._reader: InlineConnection | None = None
        self._scan_reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if str(self.path) != ":memory:":
            # The dir 0700, the file 0600 before SQLite makes it: its -wal and -shm take its mode.
            secure_data_dir(self.path.parent)
            create_private_database(self.path)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskhook-writer")
        # The writer never waits inline: a busy write lock sends BEGIN to the thread instead.
        writer = await self._in_thread(self._connect, "journal_mode = WAL", "busy_timeout = 0")
        mode = writer.execute("PRAGMA journal_mode").fetchall()[0][0]  # fetched: no open statement
        if mode != "wal":  # SQLite falls back quietly where WAL cannot work (some file systems)
            await self._in_thread(writer.close)
            self._thread.shutdown(wait=True)
            self._thread = None
            raise StoreError(
                f"{self.path}: SQLite would not use WAL mode here (journal_mode is {mode}); "
                "group commit, readers beside the writer and FULL's fsync of the WAL need it"
            )
        self._writer = InlineConnection(writer)
        self._reader = InlineConnection(await self._in_thread(self._connect, "query_only = ON"))
        self._scan_reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._scan_reader.row_factory = sqlite3.Row
        for statement in (*self._pragmas(), "query_only = ON"):
            async with self._scan_reader.execute(f"PRAGMA {statement}") as cursor:
                await cursor.fetchall()

    def _pragmas(self) -> tuple[str, ...]:
        return (
            f"busy_timeout = {int(self._busy_timeout_ms)}",
            f"synchronous = {'NORMAL' if self._fsync_wal else self._synchronous}",
            "foreign_keys = ON",
            # Statement journals and savepoint sub-journals (one per group member) in memory:
            # as temporary files they cost a write per page, which tripled an insert's time.
            "temp_store = MEMORY",
        )

    def _connect(self, *extra: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for statement in (*self._pragmas(), *extra):
            # Fetch and close: a PRAGMA's unread result row keeps its statement open, and an
            # open statement holds a lock that makes the next connection's first one wait.
            conn.execute(f"PRAGMA {statement}").fetchall()
        return conn

    async def close(self) -> None:
        while self._committing:
            await asyncio.gather(*self._committing, return_exceptions=True)
        if self._scan_reader is not None:
            await self._scan_reader.close()
        for conn in (self._reader, self._writer):
            if conn is not None:
                await self._in_thread(conn.raw.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        self._reader = self._writer = self._scan_reader = None
        self._thread = None

    @property
    def _wal_path(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    @property
    def reader(self) -> InlineConnection:
        """For indexed reads: run inline, like the writer's statements."""
        if self._reader is None:
            raise StoreError("the database is not open")
        return self._reader

    @property
    def scan_reader(self) -> aiosqlite.Connection:
        """For reads that may walk many rows: run in aiosqlite's thread, off the loop."""
        if self._scan_reader is None:
            raise StoreError("the database is not open")
        return self._scan_reader

    @property
    def writer(self) -> InlineConnection:
        if self._writer is None:
            raise StoreError("the database is not open")
        return self._writer

    async def exclusive(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the raw writer connection in the writer's thread, alone (no group
        open): for migrations, which manage their own transactions."""
        async with self._lock:
            if self._group is not None:  # pragma: no cover - groups commit before releasing
                raise StoreError("a group transaction is open")
            return await self._in_thread(
                _waiting_up_to, self._busy_timeout_ms, work, self.writer.raw
            )

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[InlineConnection]:
        """One transaction, committed (with whatever group it joined) before the block is left;
        undone alone if the block raises. ``durable=False``: only for writes that are safe to
        lose in a power cut (leases, delivery attempts); see the module's docstring."""
        self._queued += 1
        try:
            await self._lock.acquire()
        finally:
            self._queued -= 1
        try:
            first = self._group is None
            group = await self._join()
        except BaseException:
            self._lock.release()
            raise
        self._group_durable = self._group_durable or durable
        conn = self.writer
        # The group's first member needs no savepoint: nothing else is in the transaction yet,
        # so undoing it is undoing the transaction. (A savepoint's journal copies every page
        # the member changes: 20-50 us of a callback's SQL, and until the load is high most
        # groups have one member.)
        if not first:
            conn.raw.execute("SAVEPOINT tx")
        try:
            yield conn
        except BaseException:
            try:
                if first:
                    self._abandon(conn)
                else:
                    self._undo(conn, group)
            finally:
                self._leave(group)
            raise
        if not first:
            conn.raw.execute("RELEASE tx")
        self._leave(group)
        await asyncio.shield(group)

    async def _join(self) -> asyncio.Future[None]:
        if self._group is None:
            conn = self.writer.raw
            try:
                _begin(conn)
            except sqlite3.OperationalError:  # another process holds the write lock: wait
                await self._begin_waiting(conn)
            self._group = asyncio.get_running_loop().create_future()
            self._changes_at_begin = conn.total_changes
            self._group_durable = False
        return self._group

    async def _begin_waiting(self, conn: sqlite3.Connection) -> None:
        began = asyncio.ensure_future(self._in_thread(_begin_polling, self._busy_timeout_ms, conn))
        try:
            await asyncio.shield(began)
        except sqlite3.OperationalError as exc:
            raise StoreBusy("The database is busy; retry shortly.") from exc
        except asyncio.CancelledError:
            # Keep the lock until the thread is done with the connection, then undo its BEGIN.
            with contextlib.suppress(sqlite3.Error):
                await began
                conn.execute("ROLLBACK")
            raise

    def _abandon(self, conn: InlineConnection) -> None:
        """Undo a group whose first member raised: no one else has joined it (the lock was
        held), so no one waits for it; the next transaction begins a new one."""
        self._group = None
        if conn.in_transaction:
            conn.raw.execute("ROLLBACK")

    def _undo(self, conn: InlineConnection, group: asyncio.Future[None]) -> None:
        try:
            conn.raw.execute("ROLLBACK TO tx")
            conn.raw.execute("RELEASE tx")
        except sqlite3.Error as exc:
            # SQLite itself rolled the whole group back (an I/O error, a full disk), or could
            # not undo this part alone: the others in the group lose their writes too, and
            # must not report success.
            if conn.in_transaction:
                conn.raw.execute("ROLLBACK")
            self._group = None
            if not group.done():
                group.set_exception(StoreError(f"the group transaction was lost: {exc}"))
                group.exception()  # retrieved here if no one else awaits it

    def _leave(self, group: asyncio.Future[None]) -> None:
        """Hand the lock on. With others queued they join this group, and a committer queued
        behind them commits it; otherwise commit now. Either way a task does the commit, so a
        caller cancelled mid-commit cannot leave the group half-finished."""
        if self._group is not group:  # the group was lost
            self._lock.release()
            return
        if self._queued:
            if self._committer_for is not group:
                self._committer_for = group
                # In line now, right behind those queued; started after the release wakes
                # them, so that it runs right after the last of them, not a loop pass later.
                turn = self._lock.reserve()
                self._lock.release()
                task = self._spawn(self._commit_after_queue(group, turn))
                task.add_done_callback(lambda _: self._lock.forget(turn))  # if never started
            else:
                self._lock.release()
        else:
            self._spawn(self._commit_holding_lock(group, self._start_commit()))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._committing.add(task)
        task.add_done_callback(self._committing.discard)
        return task

    async def _commit_after_queue(self, group: asyncio.Future[None], turn: Turn) -> None:
        await self._lock.acquire(turn)
        try:
            if self._group is group:
                await self._finish_commit(group, self._start_commit())
        finally:
            self._lock.release()

    async def _commit_holding_lock(
        self, group: asyncio.Future[None], committing: asyncio.Future[None]
    ) -> None:
        try:
            await self._finish_commit(group, committing)
        finally:
            self._lock.release()

    def _start_commit(self) -> asyncio.Future[None]:
        """Close the open group and send its ``COMMIT`` to the writer's thread now, not when a
        task next gets a turn on the loop: under load that is most of a millisecond later, with
        SQLite's write lock held all the while."""
        self._group = None
        conn = self.writer.raw
        loop = asyncio.get_running_loop()
        try:
            if conn.total_changes != self._changes_at_begin:
                wal = self._wal_path if self._fsync_wal and self._group_durable else None
                return self._in_thread(_commit, conn, wal)
            _commit(conn, None)  # nothing written (an idle claim): nothing to wait for
            committed: asyncio.Future[None] = loop.create_future()
            committed.set_result(None)
        except Exception as exc:
            committed = loop.create_future()
            committed.set_exception(exc)
        return committed

    @staticmethod
    async def _finish_commit(group: asyncio.Future[None], committing: asyncio.Future[None]) -> None:
        try:
            await committing
        except BaseException as exc:
            group.set_exception(StoreError(f"the commit failed: {exc}"))
            group.exception()
            if not isinstance(exc, Exception):
                raise
        else:
            group.set_result(None)

    def _in_thread(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """``fn(*args)`` sent to the writer's thread now; await the future for its result."""
        if self._thread is None:
            raise StoreError("the database is not open")
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)


def _waiting_up_to(
    timeout_ms: int, work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection
) -> T:
    """``work`` with SQLite's busy handler waiting up to ``timeout_ms`` (in the writer's
    thread; inline, the writer's timeout is 0)."""
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}").fetchall()
    try:
        return work(conn)
    finally:
        conn.execute("PRAGMA busy_timeout = 0").fetchall()


def _begin_polling(timeout_ms: int, conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` against another process that holds the write lock, in the writer's
    thread. It tries every fraction of a millisecond rather than through SQLite's busy handler,
    whose sleeps grow to 100 ms: a busy writer elsewhere frees the lock only for an instant
    between its groups, and a waiter that looks that rarely can starve past the timeout."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            _begin(conn)
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(_POLL_S)


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # left by a caller cancelled while its BEGIN was on the way
        conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")


def _commit(conn: sqlite3.Connection, fsync_wal: Path | None) -> None:
    """``COMMIT``, then — for a durable group under ``FULL`` — the WAL's fsync."""
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if fsync_wal is not None:
        fd = os.open(fsync_wal, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
