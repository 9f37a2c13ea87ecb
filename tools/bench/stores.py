"""Where a scenario's service keeps its data: a SQLite file, or a database of its own on the
PostgreSQL server ``--database`` names — the same seeded rows either way.

``provision`` turns a seeded SQLite file into what a scenario serves: on SQLite the file itself,
on PostgreSQL a fresh database (``pgserver``), migrated by the service and filled from that
file (``pgseed``), dropped when the scenario's ``AsyncExitStack`` closes. ``BenchStore.env``
is what the service processes need to use it, and ``BenchStore.one`` reads a row of counts
back for the scenarios' checks on either.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from tools.bench import pgseed
from tools.bench.pgserver import PgServer, ServerCpu, database_name
from tools.bench.seed import read_only

SQLITE = "SQLite"
POSTGRES = "PostgreSQL"


@dataclass(frozen=True)
class BenchStore:
    backend: str  # SQLITE or POSTGRES
    #: the SQLite file (on PostgreSQL: the seed its rows were copied from)
    path: Path
    url: str | None = None
    server: PgServer | None = None

    @property
    def postgres(self) -> bool:
        return self.url is not None

    def env(self) -> dict[str, str]:
        """``TASKHOOK_*`` overrides that point a service process at this store. On SQLite the
        file is ``<TASKHOOK_DATA_DIR>/taskhook.db``, so the data dir alone says it."""
        return {"TASKHOOK_DATABASE_URL": self.url} if self.url else {}

    async def one(self, sql: str) -> tuple[int, ...]:
        """One row of integers (``count(*)`` and the like; SQL both dialects read alike)."""
        if self.url is not None:
            return await pgseed.counts(self.url, sql)
        with read_only(self.path) as conn:
            row = conn.execute(sql).fetchone()
        return tuple(int(v or 0) for v in row)

    async def statements_note(self, scenario: str) -> str | None:
        """Which statements took the PostgreSQL server's time on this database (None on
        SQLite, or when the server has no ``pg_stat_statements``)."""
        if self.url is None or self.server is None:
            return None
        top = await self.server.top_statements(database_name(self.url))
        if not top:
            return None
        return f"{scenario} on PostgreSQL, statements by server time (share, calls, mean): " + (
            "; ".join(top)
        )

    def server_cpu(self) -> ServerCpu | None:
        """A reader of the server's CPU on this database (PostgreSQL on this host only)."""
        if self.url is None or self.server is None or not self.server.local:
            return None
        return ServerCpu(self.server, database_name(self.url))


async def provision(
    stack: contextlib.AsyncExitStack,
    server: PgServer | None,
    label: str,
    seeded: Path,
    secret_key: str,
    log_dir: Path,
) -> BenchStore:
    """The store a scenario serves from ``seeded`` (a SQLite file ``seed.build`` wrote): that
    file when ``server`` is None, else a new database on ``server`` holding the same rows."""
    if server is None:
        return BenchStore(SQLITE, seeded)
    url = await stack.enter_async_context(server.database(label))
    await pgseed.migrate(url, secret_key, log_dir)
    await pgseed.copy_from_sqlite(seeded, url)
    return BenchStore(POSTGRES, seeded, url, server)


async def clone(stack: contextlib.AsyncExitStack, template: BenchStore, label: str,
                copy_to: Path) -> BenchStore:  # fmt: skip
    """A fresh copy of ``template`` (a file copy on SQLite at ``copy_to``, ``CREATE DATABASE …
    TEMPLATE`` on PostgreSQL), for a run that changes its rows."""
    import shutil

    if template.url is None or template.server is None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template.path, copy_to)
        return BenchStore(SQLITE, copy_to)
    url = await stack.enter_async_context(
        template.server.database(label, template=database_name(template.url))
    )
    return BenchStore(POSTGRES, template.path, url, template.server)
