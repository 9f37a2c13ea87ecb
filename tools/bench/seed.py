"""Databases for the benchmark: the service's own schema, filled with bulk SQL.

The schema comes from the service (``SqliteStore.open`` runs its migrations), and so do the
accounts, API keys and endpoints (its use cases and store). Tasks and everything that follows
from them are then written with ``executemany`` in large transactions — a million tasks through
the API would take hours — using row text made by the service's own code (``templates``), with
foreign keys on, so every row points at a real parent as it would in production.

Secondary indexes are dropped while rows go in and re-created from their own ``CREATE INDEX``
text afterwards (the same indexes, built once instead of maintained row by row), and the file
is built under a temporary name and renamed when complete, so an interrupted build never leaves
a half-filled database where a cached one is expected.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from service.core.clock import Clock
from service.core.endpoints import Endpoint, generate_secret
from service.core.ids import new_id
from service.core.ledger import TaskStatus
from service.core.secretbox import SecretBox
from service.store.rows import to_json
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tools.bench import templates as tpl
from tools.bench.ids import Ids

#: an endpoint to create: its URL and the event types it subscribes to (None: all)
EndpointSpec = tuple[str, tuple[str, ...] | None]
TERMINAL = (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
_PATH = {
    TaskStatus.QUEUED: (TaskStatus.QUEUED,),
    TaskStatus.SUBMITTED: (TaskStatus.QUEUED, TaskStatus.SUBMITTED),
    TaskStatus.RUNNING: (TaskStatus.QUEUED, TaskStatus.SUBMITTED, TaskStatus.RUNNING),
    TaskStatus.SUCCEEDED: (TaskStatus.QUEUED, TaskStatus.SUBMITTED, TaskStatus.RUNNING,
                           TaskStatus.SUCCEEDED),
    TaskStatus.FAILED: (TaskStatus.QUEUED, TaskStatus.SUBMITTED, TaskStatus.RUNNING,
                        TaskStatus.FAILED),
}  # fmt: skip


def path_length(status: TaskStatus) -> int:
    """How many status events a task in ``status`` has had."""
    return len(_PATH[status])


_HEADERS = to_json(
    {
        "host": "127.0.0.1:8000", "content-type": "application/json",
        "webhook-id": "msg_" + "0" * 32, "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + "A" * 43 + "=", "content-length": "900",
    }
)  # fmt: skip
_TOKEN = "I" * 84  # as long as a minted callback token (inside stored callback bodies)


@dataclass(frozen=True)
class SeedEndpoint:
    id: str
    url: str
    secret: str
    event_types: tuple[str, ...] | None


@dataclass(frozen=True)
class SeedAccount:
    id: str
    api_key: str
    endpoints: tuple[SeedEndpoint, ...]


@dataclass(frozen=True)
class PoolTask:
    """A task waiting for its provider's callback: what a callback for it needs."""

    id: str
    created_at: int
    provider_task_id: str


@dataclass
class Counts:
    tasks: int = 0
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    callbacks: int = 0
    timeline: int = 0
    credit_entries: int = 0
    pending_due: int = 0
    pending_retry: int = 0


async def prepare(
    path: Path, accounts: Sequence[Sequence[EndpointSpec]], clock: Clock, secret_key: str
) -> list[SeedAccount]:
    """Migrate a new database at ``path`` and create one account (with an API key and a
    generous grant) per entry of ``accounts``, each with those endpoints, their secrets sealed
    under ``secret_key`` (the service that runs on the file must have it)."""
    store = SqliteStore(path, synchronous="OFF", secrets=SecretBox.from_keys(secret_key))
    await store.open()
    made = []
    try:
        for n, specs in enumerate(accounts):
            account = await create_account(store, clock, f"bench {n}", 10**12)
            _key, raw = await create_api_key(store, clock, account.id)
            endpoints = []
            for url, types in specs:
                now = clock()
                endpoint = Endpoint(
                    id=new_id("ep", now), account_id=account.id, url=url, description="bench",
                    event_types=types, enabled=True, disabled_reason=None,
                    secret=generate_secret(secrets.token_bytes(32)), previous_secret=None,
                    previous_secret_until=None, failing_since=None, created_at=now,
                    updated_at=now,
                )  # fmt: skip
                async with store.transaction() as tx:
                    await tx.insert_endpoint(endpoint)
                endpoints.append(SeedEndpoint(endpoint.id, url, endpoint.secret, types))
            made.append(SeedAccount(account.id, raw, tuple(endpoints)))
    finally:
        await store.close()
    return made


@dataclass
class Plan:
    """What to write for each task. ``status_of(i)`` says where task ``i`` stands.

    ``history``: every event, delivery, attempt, timeline entry and callback that brought the
    task there. Without it, only the task and its charge — plus, with ``pending_last``, its
    latest event and one pending delivery per subscribed endpoint, due now (a backlog)."""

    count: int
    start_ms: int
    spacing_ms: float
    status_of: Callable[[int], TaskStatus]
    history: bool = True
    pending_last: bool = False
    #: non-terminal tasks are next looked at then (far ahead: no reconciler poll in a run)
    next_check_ms: int | None = None
    #: one delivery in this many waits for a scheduled retry after a 500 (0: none)
    retry_every: int = 0
    retry_at_ms: int = 0
    #: tasks from this index on have their deliveries pending and due now (not yet sent)
    due_from: int = 1 << 62
    #: operator replays: the final event of one terminal task in ``replay_every`` is sent again
    #: to the account's first endpoint, ``replays`` times in all
    replays: int = 0
    replay_every: int = 1
    public_base: str = "http://127.0.0.1:8000"
    pool: list[PoolTask] = field(default_factory=list)


class Writer:
    """Buffered ``executemany`` into one connection, parents flushed before children.

    Inserting runs in a thread while the next batch is made: sqlite3 lets go of the GIL while
    SQLite works, so building rows and writing them share the two cores."""

    ORDER = ("tasks", "credit_entries", "timeline", "callbacks", "events", "deliveries",
             "attempts")  # fmt: skip
    SQL: ClassVar[dict[str, int]] = {
        "tasks": 25, "credit_entries": 6, "timeline": 10, "callbacks": 13, "events": 7,
        "deliveries": 14, "attempts": 9,
    }  # fmt: skip

    def __init__(self, conn: sqlite3.Connection, flush_rows: int = 200_000) -> None:
        self.conn = conn
        self.rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in self.ORDER}
        self.flush_rows = flush_rows
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bench-seed")
        self._writing: Future[None] | None = None

    def maybe_flush(self) -> None:
        if len(self.rows["deliveries"]) + len(self.rows["tasks"]) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the writing thread (after the previous batch is in)."""
        batch = {table: rows[:] for table, rows in self.rows.items() if rows}
        for rows in self.rows.values():
            rows.clear()
        self.wait()
        self._writing = self._thread.submit(self._insert, batch)

    def wait(self) -> None:
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def close(self) -> None:
        self.flush()
        self.wait()
        self._thread.shutdown()

    def _insert(self, batch: dict[str, list[tuple[object, ...]]]) -> None:
        for table in self.ORDER:
            if table in batch:
                marks = ", ".join("?" * self.SQL[table])
                sql = f"INSERT INTO {table} VALUES ({marks})"  # noqa: S608
                self.conn.executemany(sql, batch[table])


def open_bulk(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    """A connection for bulk loading, with the secondary indexes dropped; returns it and the
    ``CREATE INDEX`` statements to run afterwards (``finish_bulk``)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -1000000")
    indexes = [
        (name, sql)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    ]
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("BEGIN")
    return conn, [sql for _, sql in indexes]


def finish_bulk(conn: sqlite3.Connection, indexes: Sequence[str]) -> None:
    conn.execute("COMMIT")
    for sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


def write_tasks(w: Writer, accounts: Sequence[SeedAccount], plan: Plan, ids: Ids) -> Counts:
    """Write ``plan.count`` tasks, round-robin over ``accounts``."""
    steps = tpl.steps(plan.public_base)
    bodies = {
        s: tpl.callback_body(plan.public_base, s).replace(tpl.TOKEN, _TOKEN)
        for s in (TaskStatus.RUNNING, *TERMINAL)
    }
    counts = Counts()
    rows = w.rows
    task_rows, credit_rows, timeline_rows = rows["tasks"], rows["credit_entries"], rows["timeline"]
    callback_rows, event_rows = rows["callbacks"], rows["events"]
    delivery_rows, attempt_rows = rows["deliveries"], rows["attempts"]
    delivery_no = replayed = 0
    for i in range(plan.count):
        account = accounts[i % len(accounts)]
        acct = account.id
        status = plan.status_of(i)
        created = plan.start_ms + int(i * plan.spacing_ms)
        task_id = ids("task", created)
        ptid = "sim_" + ids.hex24()
        created_rfc = ids.rfc3339(created)
        step = steps[status]
        at = created + tpl.STEP_OFFSET_MS[status]
        terminal = status in TERMINAL
        submitted_at = created + 300 if status is not TaskStatus.QUEUED else None
        next_check = None if terminal else (plan.next_check_ms or at)
        if status is TaskStatus.QUEUED:
            next_check = plan.next_check_ms or created
        task_rows.append((
            task_id, acct, str(status), step.progress, step.sequence, tpl.MODEL, "simulator",
            ptid if submitted_at else None, tpl.TASK_TYPE, tpl.PROMPT, _PARAMS,
            step.results.replace(tpl.PTID, ptid), step.failure_code, step.failure_message,
            tpl.COST, step.refunded, _METADATA, created, at, at if terminal else None,
            1 if submitted_at else 0, next_check, submitted_at, None, None,
        ))  # fmt: skip
        credit_rows.append((ids("cred", created), acct, "charge", -tpl.COST, task_id, created))
        counts.credit_entries += 1
        if step.refunded:
            credit_rows.append((ids("cred", at), acct, "refund", tpl.COST, task_id, at))
            counts.credit_entries += 1
        if status is TaskStatus.RUNNING and not plan.history:
            plan.pool.append(PoolTask(task_id, created, ptid))
        counts.tasks += 1
        path = _PATH[status] if plan.history else ((status,) if plan.pending_last else ())
        due = i >= plan.due_from or not plan.history
        for s in path:
            s_at = created + tpl.STEP_OFFSET_MS[s]
            s_rfc = ids.rfc3339(s_at)
            s_step = steps[s]
            if plan.history:
                kind, source = ("callback", "callback") if s in bodies else (
                    ("state_change", "api" if s is TaskStatus.QUEUED else "submitter"))  # fmt: skip
                timeline_rows.append((
                    ids("tl", s_at), task_id, kind, source, "applied", str(s), s_step.progress,
                    s_step.sequence, s_step.detail, s_at,
                ))  # fmt: skip
                counts.timeline += 1
                if s in bodies:
                    counts.callbacks += 1
                    body = bodies[s].replace(tpl.PTID, ptid).encode()
                    callback_rows.append((
                        ids("cb", s_at), acct, task_id, "simulator", ptid, _HEADERS, body,
                        "verified", "applied", s_step.detail, s_at, s_at, None,
                    ))  # fmt: skip
            event_id = ids("evt", s_at)
            event_type = f"task.{s}"
            event_rows.append((
                event_id, acct, event_type, task_id,
                s_step.render(task_id, ptid, created_rfc, s_rfc), s_at, None,
            ))  # fmt: skip
            counts.events += 1
            targets = [e for e in account.endpoints if e.event_types is None
                       or event_type in e.event_types]  # fmt: skip
            replay = (replayed < plan.replays and s in TERMINAL and i % plan.replay_every == 0
                      and account.endpoints)  # fmt: skip
            replayed += bool(replay)
            for n, endpoint in enumerate([*targets, *([account.endpoints[0]] if replay else [])]):
                manual = int(n >= len(targets))
                delivery_no += 1
                d_id = ids("dlv", s_at)
                if due:
                    delivery_rows.append((
                        d_id, event_id, endpoint.id, acct, "pending", 0, s_at, None, None,
                        manual, None, None, s_at, s_at,
                    ))  # fmt: skip
                    counts.pending_due += 1
                elif plan.retry_every and delivery_no % plan.retry_every == 0:
                    delivery_rows.append((
                        d_id, event_id, endpoint.id, acct, "pending", 1, plan.retry_at_ms, None,
                        None, manual, 500, None, s_at, s_at + 5,
                    ))  # fmt: skip
                    attempt_rows.append((
                        ids("att", s_at + 5), d_id, 1, 500, 4, "Internal Server Error", None,
                        manual, s_at + 5,
                    ))  # fmt: skip
                    counts.pending_retry += 1
                    counts.attempts += 1
                else:
                    delivery_rows.append((
                        d_id, event_id, endpoint.id, acct, "delivered", 1, None, None, None,
                        manual, 204, None, s_at, s_at + 5,
                    ))  # fmt: skip
                    attempt_rows.append((
                        ids("att", s_at + 5), d_id, 1, 204, 3, "", None, manual, s_at + 5,
                    ))  # fmt: skip
                    counts.attempts += 1
                counts.deliveries += 1
        w.maybe_flush()
    w.close()
    return counts


_PARAMS = to_json(tpl.spec().params)
_METADATA = to_json(dict(tpl.spec().metadata))


def read_only(path: Path | str) -> contextlib.closing[sqlite3.Connection]:
    """A read-only connection to a bench database, closed when the ``with`` block ends."""
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def table_counts(path: Path) -> dict[str, int]:
    """Rows per table, read back (what a build really wrote)."""
    with read_only(path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in (*Writer.ORDER, "accounts", "endpoints", "api_keys")
        }


def size_bytes(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))


async def build(
    path: Path,
    accounts: Sequence[Sequence[EndpointSpec]],
    plan: Plan,
    clock: Clock,
    *,
    secret_key: str,
) -> tuple[list[SeedAccount], Counts]:
    """A complete database at ``path``: schema, accounts, then ``plan``'s tasks; endpoint
    secrets are sealed under ``secret_key`` (the ``TASKHOOK_SECRET_KEY`` it will be served
    with)."""
    tmp = path.with_name(path.name + ".building")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = await prepare(tmp, accounts, clock, secret_key)
    conn, indexes = open_bulk(tmp)
    writer = Writer(conn)
    try:
        counts = write_tasks(writer, made, plan, Ids())
        finish_bulk(conn, indexes)
    except BaseException:
        writer.close()
        conn.close()
        raise
    os.replace(tmp, path)
    return made, counts
