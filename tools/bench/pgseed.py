"""Bench databases on PostgreSQL: the SQLite seed (``seed``), copied in with ``COPY``.

The schema is the service's own: ``python -m service db migrate`` with ``TASKHOOK_DATABASE_URL``
naming the new database. The rows are those ``seed.build`` wrote to SQLite — one generator for
both stores, so the two run on the same data — copied table by table, parents before children,
through ``asyncpg``'s ``copy_records_to_table``: a million tasks and five million deliveries in
minutes where ``INSERT`` would take much longer. Triggers (and so foreign-key checks) are off
while rows go in (``session_replication_role = replica``): SQLite's rows already satisfy its
keys, and a table the triggers keep (``status_counts``) is copied as SQLite kept it rather than
counted a second time by PostgreSQL's own triggers.

Columns are matched by name, and each value is converted to the PostgreSQL column's type where
SQLite's differs (0/1 for a boolean, text for ``jsonb``, bytes for ``bytea``). Secondary indexes
are dropped while rows go in and re-created from ``pg_get_indexdef`` afterwards, and every
sequence behind a column default is moved past the largest value copied. Tables SQLite has and
the PostgreSQL schema does not (SQLite's own bookkeeping) are skipped; the migrations' own table
is left as ``migrate`` wrote it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import asyncpg

from service.store.postgres.copy_derived import DERIVED
from tools.bench import processes

#: tables the migrations own on each side: never copied
MIGRATION_TABLES = ("schema_migrations", "migrations", "_migrations")
BATCH = 20_000
#: the environment variable of the ``_drop_count_triggers`` diagnostic
WITHOUT_COUNTS = "BENCH_PG_WITHOUT_COUNT_TRIGGERS"

Convert = Callable[[Any], Any]


async def migrate(url: str, secret_key: str, log_dir: Path) -> None:
    """The service's migrations, run by the service's own CLI against ``url``."""
    env = processes.service_env(log_dir / "migrate-data", secret_key, TASKHOOK_DATABASE_URL=url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "db", "migrate", env=env, cwd=processes.ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"db migrate failed ({proc.returncode}): {out.decode()[-2000:]}")


def sqlite_order(conn: sqlite3.Connection) -> list[str]:
    """SQLite's tables, every parent (by foreign key) before its children."""
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )]  # fmt: skip
    graph: dict[str, set[str]] = {}
    for table in tables:
        parents = {r[2] for r in conn.execute(f'PRAGMA foreign_key_list("{table}")')}
        graph[table] = parents - {table}
    return list(TopologicalSorter(graph).static_order())


def converter(pg_type: str) -> Convert | None:
    """How a SQLite value becomes a value of ``pg_type`` for asyncpg (``None``: as it is)."""
    if pg_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if pg_type in ("json", "jsonb", "text", "character varying"):
        return lambda v: v.decode() if isinstance(v, bytes) else v
    if pg_type == "bytea":
        return lambda v: v.encode() if isinstance(v, str) else v
    if pg_type == "timestamp with time zone":  # SQLite keeps epoch milliseconds
        return lambda v: None if v is None else datetime.fromtimestamp(v / 1000, UTC)
    return None


def _rows(
    cursor: sqlite3.Cursor, converts: Sequence[Convert | None]
) -> Iterator[list[tuple[Any, ...]]]:
    pairs = [(i, c) for i, c in enumerate(converts) if c is not None]
    while batch := cursor.fetchmany(BATCH):
        if pairs:
            out = []
            for row in batch:
                values = list(row)
                for i, convert in pairs:
                    values[i] = convert(values[i])
                out.append(tuple(values))
            yield out
        else:
            yield batch


async def _drop_indexes(conn: asyncpg.Connection, tables: Sequence[str]) -> list[str]:
    """Drop the secondary indexes (not those behind a constraint) of ``tables``; their DDL."""
    rows = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = current_schema() AND t.relname = ANY($1::text[])"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        list(tables),
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["ddl"] for row in rows]


async def _drop_count_triggers(conn: asyncpg.Connection) -> None:
    """A diagnostic (``BENCH_PG_WITHOUT_COUNT_TRIGGERS=1``): the schema without the triggers
    that keep ``status_counts``, to measure what their shared rows cost — every transaction
    that moves a status updates one of a handful of rows and holds its lock until it commits.
    ``/metrics`` counts are wrong on such a database; never a figure to compare with SQLite's."""
    rows = await conn.fetch(
        "SELECT tgname, tgrelid::regclass::text AS rel FROM pg_trigger"
        " WHERE NOT tgisinternal AND tgname LIKE '%counted%'"
    )
    for row in rows:
        await conn.execute(f'DROP TRIGGER "{row["tgname"]}" ON {row["rel"]}')


async def _bump_sequences(conn: asyncpg.Connection, tables: Sequence[str]) -> None:
    rows = await conn.fetch(
        "SELECT table_name, column_name, pg_get_serial_sequence(table_name, column_name) AS seq"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ANY($1::text[])",
        list(tables),
    )
    for row in rows:
        if row["seq"]:
            await conn.execute(
                f"SELECT setval('{row['seq']}', GREATEST(1, (SELECT coalesce(max("  # noqa: S608
                f'"{row["column_name"]}"), 0) FROM "{row["table_name"]}")))'
            )


async def copy_from_sqlite(source: Path, url: str) -> dict[str, int]:
    """Copy every row of the SQLite file ``source`` into the migrated, empty PostgreSQL
    database ``url``; rows copied per table."""
    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    conn = await asyncpg.connect(url)
    copied: dict[str, int] = {}
    try:
        columns: dict[str, dict[str, str]] = {}
        for row in await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ):
            columns.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
        order = [t for t in sqlite_order(lite) if t in columns and t not in MIGRATION_TABLES]
        indexes = await _drop_indexes(conn, order)
        # Triggers off (foreign keys are triggers too): rows go in as SQLite holds them, and
        # tables triggers keep (status_counts) are copied as they stand instead of counted twice.
        await conn.execute("SET session_replication_role = replica")
        for derived in DERIVED:  # the migrations seed these (zeros): SQLite's rows replace them
            if derived.table in order:
                await conn.execute(f'DELETE FROM "{derived.table}"')  # noqa: S608
        for table in order:
            cursor = lite.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            names = [d[0] for d in cursor.description]
            keep = [i for i, n in enumerate(names) if n in columns[table]]
            if len(keep) != len(names):
                wanted = ", ".join(f'"{names[i]}"' for i in keep)
                cursor = lite.execute(f'SELECT {wanted} FROM "{table}"')  # noqa: S608
                names = [names[i] for i in keep]
            converts = [converter(columns[table][n]) for n in names]
            copied[table] = 0
            for batch in _rows(cursor, converts):
                await conn.copy_records_to_table(table, records=batch, columns=names)
                copied[table] += len(batch)
        await conn.execute("SET session_replication_role = DEFAULT")
        if os.environ.get(WITHOUT_COUNTS) == "1":
            await _drop_count_triggers(conn)
        for ddl in indexes:
            await conn.execute(ddl)
        await _bump_sequences(conn, order)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
        lite.close()
    return copied


async def counts(url: str, sql: str, *args: object) -> tuple[int, ...]:
    """One row of integers from ``url`` (the scenarios' checks, on PostgreSQL)."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(sql, *args)
    finally:
        await conn.close()
    if row is None:
        raise RuntimeError(f"no row: {sql}")
    return tuple(int(v or 0) for v in row)
