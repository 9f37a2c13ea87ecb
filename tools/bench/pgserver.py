"""The PostgreSQL server ``--database postgresql://…`` names: databases of the bench's own on
it, and the CPU its processes spend on them.

Every scenario that runs on PostgreSQL gets a fresh database named ``th_bench_<label>_<hex>``
(``create``), dropped afterwards (``drop``; ``database`` does both), so runs never see one
another's rows and nothing is left on a shared server. The URL's own database (``postgres`` if
it names none) is only used to create and drop them.

PostgreSQL runs a process per connection, so its CPU is read from ``/proc`` like the service's:
``ServerCpu`` samples the backends connected to one database (from ``pg_stat_activity``) and the
server's auxiliary processes (WAL writer, checkpointer, background writer, autovacuum), keeping
each one's last reading so a backend that exits mid-run still counts. The backends are ours
alone; the auxiliary processes serve every database on the server, so on a shared server their
figure is an upper bound. Only a server on this host can be measured this way (``local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from service.store.postgres.admin import create_database, drop_database, with_database

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
#: backend types that work for the whole server, not for one connection
AUXILIARY = ("walwriter", "checkpointer", "background writer", "autovacuum launcher",
             "autovacuum worker", "logical replication launcher")  # fmt: skip


@dataclass(frozen=True)
class PgServer:
    """A server reached by ``url`` (``postgresql://USER@HOST:PORT/DB``)."""

    url: str

    def url_for(self, database: str) -> str:
        """The same server, user and options, another database."""
        return with_database(self.url, database)

    @property
    def admin_url(self) -> str:
        path = urlsplit(self.url).path.strip("/")
        return self.url if path else self.url_for("postgres")

    @property
    def local(self) -> bool:
        """On this host, so its processes' CPU can be read from ``/proc``."""
        return (urlsplit(self.url).hostname or "") in _LOCAL_HOSTS

    async def reachable(self, within_s: float = 3.0) -> bool:
        try:
            conn = await asyncpg.connect(self.admin_url, timeout=within_s)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    async def create(self, label: str, template: str | None = None) -> str:
        """A new, empty database (or a copy of ``template``, which nobody may be connected
        to); its name."""
        name = f"th_bench_{label}_{secrets.token_hex(4)}"
        await create_database(self.admin_url, name, template)
        return name

    async def drop(self, name: str) -> None:
        """Drop ``name``, ending any session still on it (a process that did not exit)."""
        await drop_database(self.admin_url, name)

    @contextlib.asynccontextmanager
    async def database(self, label: str, template: str | None = None) -> AsyncIterator[str]:
        """A fresh database for a ``with`` block, dropped after it; yields its URL."""
        name = await self.create(label, template)
        try:
            yield self.url_for(name)
        finally:
            await self.drop(name)

    async def top_statements(self, database: str, limit: int = 8) -> list[str]:
        """The statements that took the most server time on ``database``, from
        ``pg_stat_statements`` when the server has it loaded (else nothing): where the store
        spends the database's time (waits for row locks included). The bench's own seeding
        (COPY, index builds, ANALYZE) is left out."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            try:
                rows = await conn.fetch(
                    "SELECT s.query, s.calls, s.total_exec_time AS total,"
                    " sum(s.total_exec_time) OVER () AS everything"
                    " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = $1"
                    " AND s.query !~* '^(COPY|ANALYZE|CREATE INDEX|SELECT setval)'"
                    " ORDER BY s.total_exec_time DESC LIMIT $2",
                    database,
                    limit,
                )
            except asyncpg.PostgresError:  # not installed, or not preloaded
                return []
        finally:
            await conn.close()
        found = []
        for r in rows:
            share = r["total"] / max(r["everything"], 1e-9)
            mean_us = r["total"] / max(r["calls"], 1) * 1000
            query = " ".join(r["query"].split())[:160]
            found.append(f"{share:.0%}, {r['calls']} calls, {mean_us:.0f} µs: {query}")
        return found

    async def processes(self, database: str) -> tuple[set[int], set[int]]:
        """The pids of ``database``'s backends, and of the server's auxiliary processes."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            rows = await conn.fetch(
                "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> "
                "pg_backend_pid()"
            )
        finally:
            await conn.close()
        ours = {r["pid"] for r in rows if r["datname"] == database}
        aux = {r["pid"] for r in rows if r["backend_type"] in AUXILIARY and r["pid"] not in ours}
        return ours, aux


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of ``pid`` so far; ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass
class ServerCpu:
    """CPU seconds the server spent between ``start`` and ``stop``: its backends on one
    database (``backends``) and its auxiliary processes (``auxiliary``). A sampler re-reads
    ``pg_stat_activity`` and every pid's CPU every ``interval_s`` while it runs."""

    server: PgServer
    database: str
    interval_s: float = 0.25
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _aux: set[int] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        ours, aux = await self.server.processes(self.database)
        self._aux |= aux
        for pid in ours | aux:
            cpu = proc_cpu_seconds(pid)
            if cpu is None:
                continue
            # A pid first seen mid-run started mid-run (a new connection): all its CPU counts.
            self._first.setdefault(pid, cpu if self._task is None else 0.0)
            self._last[pid] = cpu

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._sample()

    async def start(self) -> None:
        self._first.clear()
        self._last.clear()
        self._aux.clear()
        await self._sample()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> tuple[float, float]:
        """(backends' CPU seconds, auxiliary processes' CPU seconds) since ``start``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sample()
        self._task = None
        backends = aux = 0.0
        for pid, last in self._last.items():
            used = max(0.0, last - self._first.get(pid, 0.0))
            if pid in self._aux:
                aux += used
            else:
                backends += used
        return backends, aux


def database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")
