"""``taskhook db copy``: a SQLite database moved into an empty PostgreSQL one, then checked.

The source is opened as the service opens it first (``SqliteStore``: migrated to the current
schema, any endpoint secret still in the clear sealed with the configured key), so what crosses
over is the current schema with sealed secrets only. It is then read in one SQLite read
transaction — one snapshot, even if something still writes to the file — table by table in
rowid order, so the target's identity ``rowid`` columns (timeline, deliveries, attempts) number
the rows in the order SQLite kept them.

The target is migrated (its ``schema_migrations`` stay its own) and must be empty: every table
of its schema without a row, bar its bookkeeping, and its derived counts (``status_counts``…)
at most zeros (``copy_derived``). The whole copy is one PostgreSQL transaction, written with
``COPY`` (asyncpg's ``copy_records_to_table``) in foreign-key order. Derived counts are never
copied: the target rebuilds them from the rows that arrived. Before ``COMMIT`` the two sides are
compared (``copy_check``): a mismatch, like any failure part-way, rolls everything back and
leaves the target as empty as it was.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from service.core.secretbox import SecretBox
from service.errors import StoreError, StoreUnavailable
from service.store.postgres.connection import CONNECTION_ERRORS
from service.store.postgres.copy_check import Check, compare, redact
from service.store.postgres.copy_derived import (
    BOOKKEEPING,
    DERIVED_TABLES,
    pause,
    present,
    resume,
)
from service.store.postgres.migrate import migrate
from service.store.sqlite import SqliteStore

#: rows read from SQLite and sent in one ``COPY`` at a time
BATCH_ROWS = 5000
#: PostgreSQL's types for text (which holds no NUL)
TEXT_TYPES = frozenset({"text", "character varying"})
#: what the target keeps itself (``copy_derived``): never copied
NOT_COPIED = BOOKKEEPING | DERIVED_TABLES


class CopyRefused(StoreError):
    """The copy was not started: the target holds data, or the source cannot be copied."""

    code = "copy_refused"


@dataclass(frozen=True)
class Column:
    name: str
    #: PostgreSQL's ``data_type`` (``text``, ``bigint``, ``integer``, ``bytea``…)
    kind: str


@dataclass
class CopyReport:
    """What was copied and what the check compared: rows per table, accounts balanced."""

    source: Path
    target: str  #: the target URL, its password redacted
    rows: dict[str, int] = field(default_factory=dict)
    check: Check | None = None
    seconds: float = 0.0
    #: derived counts rebuilt from a recount (else the triggers counted each copied row)
    recounted: bool = False

    def summary(self) -> str:
        lines = [f"copied {self.source} -> {self.target} in {self.seconds:.1f}s"]
        lines += [f"  {name:<22} {n:>10} rows" for name, n in self.rows.items()]
        if self.check is not None:
            lines.append(
                f"verified: row counts of {len(self.check.counts)} tables, the balances of"
                f" {len(self.check.balances)} accounts, {len(self.check.statuses)} counts"
                " kept by triggers"
            )
        return "\n".join(lines)


async def copy_database(
    source: Path,
    target_url: str,
    secrets: SecretBox,
    *,
    batch_rows: int = BATCH_ROWS,
) -> CopyReport:
    """Copy the SQLite database ``source`` into the empty PostgreSQL database ``target_url``.
    Raises ``CopyRefused`` (nothing written) for a non-empty target, ``StoreError`` for a copy
    that failed or did not verify (rolled back: the target is left empty)."""
    started = time.monotonic()
    report = CopyReport(source, redact(target_url))
    if not await asyncio.to_thread(source.is_file):
        raise CopyRefused(f"no SQLite database at {source}")
    store = SqliteStore(source, secrets=secrets)
    try:
        await store.open()  # migrated, secrets sealed
    except sqlite3.DatabaseError as exc:
        raise CopyRefused(f"{source} cannot be read as a SQLite database: {exc}") from exc
    await store.close()
    reader = sqlite3.connect(source, isolation_level=None, check_same_thread=False)
    try:
        reader.execute("BEGIN")  # one snapshot for the copy and the check
        reader.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        conn = await _connect(target_url)
        try:
            await _refuse_unless_empty(conn, report.target)
            await migrate(conn)
            try:
                async with conn.transaction():
                    tables = await _target_tables(conn)
                    await _refuse_unless_empty(conn, report.target)
                    order = _plan(reader, tables)
                    derived = await present(conn)
                    report.recounted = await pause(conn, derived)
                    for name in order:
                        report.rows[name] = await _copy_table(
                            reader, conn, name, tables[name], batch_rows
                        )
                    if report.recounted:
                        await resume(conn, derived)
                    report.check = await compare(reader, conn, order, derived)
            except (asyncpg.PostgresError, asyncpg.DataError) as exc:  # a row it refused
                raise StoreError(
                    f"the copy failed and was rolled back (the target is left empty):"
                    f" {type(exc).__name__}: {redact(str(exc), target_url)}"
                ) from exc
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(
                f"lost the target database {report.target}: {type(exc).__name__}"
            ) from exc
        except asyncpg.PostgresError as exc:  # before the copy: a migration, a permission
            raise StoreError(
                f"the target {report.target} refused (nothing copied):"
                f" {type(exc).__name__}: {redact(str(exc), target_url)}"
            ) from exc
        finally:
            await conn.close()
    finally:
        reader.close()
    report.seconds = time.monotonic() - started
    return report


async def _connect(url: str) -> asyncpg.Connection[Any]:
    try:
        return await asyncpg.connect(url, timeout=10)
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable(
            f"cannot connect to {redact(url)}: {type(exc).__name__}: {redact(str(exc), url)}"
        ) from exc
    except asyncpg.PostgresError as exc:  # no such database, authentication refused…
        raise StoreError(f"cannot open {redact(url)}: {redact(str(exc), url)}") from exc


async def _refuse_unless_empty(conn: asyncpg.Connection[Any], shown: str) -> None:
    """Every table of the target's schema must be empty, bar its bookkeeping; a derived
    table (``status_counts``…) may hold zeros."""
    names = [
        row[0]
        for row in await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " ORDER BY table_name"
        )
        if row[0] not in BOOKKEEPING
    ]
    filled = []
    for name in names:
        where = " WHERE n <> 0" if name in DERIVED_TABLES else ""
        ident = _quoted(name)
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {ident}{where})"):  # noqa: S608
            filled.append(name)
    if filled:
        raise CopyRefused(
            f"the target {shown} is not empty ({', '.join(filled)} hold rows); copy only into an"
            " empty database"
        )


async def _target_tables(conn: asyncpg.Connection[Any]) -> dict[str, list[Column]]:
    """The target's tables (bar its own) and the columns a copy fills: identity columns (the
    ``rowid`` of ordered tables) are left to PostgreSQL."""
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        " AND c.is_identity = 'NO' AND c.is_generated = 'NEVER'"
        " ORDER BY c.table_name, c.ordinal_position"
    )
    tables: dict[str, list[Column]] = {}
    for table, column, kind in rows:
        if table not in NOT_COPIED:
            tables.setdefault(table, []).append(Column(column, kind))
    refs = await conn.fetch(
        "SELECT child.relname, parent.relname FROM pg_constraint k"
        " JOIN pg_class child ON child.oid = k.conrelid"
        " JOIN pg_class parent ON parent.oid = k.confrelid"
        " WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace"
    )
    parents: dict[str, set[str]] = {name: set() for name in tables}
    for child, parent in refs:
        if child in parents and parent != child:
            parents[child].add(parent)
    return {name: tables[name] for name in _parents_first(parents)}


def _parents_first(parents: dict[str, set[str]]) -> list[str]:
    """Tables ordered so that every table comes after the tables it references."""
    order: list[str] = []
    left = dict(parents)
    while left:
        ready = sorted(name for name, needs in left.items() if needs <= set(order))
        if not ready:
            raise StoreError(f"the target's foreign keys form a cycle among {sorted(left)}")
        order += ready
        for name in ready:
            del left[name]
    return order


def _plan(reader: sqlite3.Connection, tables: dict[str, list[Column]]) -> list[str]:
    """The target tables to copy, in foreign-key order; refuses a source whose rows would
    have nowhere to go (a table or column the target lacks)."""
    source = [
        row[0]
        for row in reader.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for name in source:
        if name in NOT_COPIED:
            continue
        if name not in tables:
            if _count(reader, name):
                raise CopyRefused(f"the source table {name} has no counterpart in the target")
            continue
        have = {c.name for c in tables[name]}
        extra = [c for c in _source_columns(reader, name) if c not in have]
        if extra:
            raise CopyRefused(f"the target's {name} has no column {', '.join(extra)}")
    return [name for name in tables if name in source]


def _source_columns(reader: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in reader.execute(f"PRAGMA table_info({_quoted(table)})")]


def _count(reader: sqlite3.Connection, table: str) -> int:
    found: int = reader.execute(f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone()[0]  # noqa: S608
    return found


async def _copy_table(
    reader: sqlite3.Connection,
    conn: asyncpg.Connection[Any],
    table: str,
    columns: list[Column],
    batch_rows: int,
) -> int:
    """One table, batch by batch, in SQLite's rowid order (a ``WITHOUT ROWID`` table: key
    order). Columns the source lacks are left to the target's defaults."""
    present = set(_source_columns(reader, table))
    wanted = [c for c in columns if c.name in present]
    names = [c.name for c in wanted]
    order = "rowid" if _has_rowid(reader, table) else "1"
    texts = [_quoted(c.name) for c in wanted if c.kind in TEXT_TYPES]
    # whether a row holds a NUL in its text, found by SQLite (Python looks at those rows only)
    nul = " OR ".join(f"instr(CAST({t} AS BLOB), x'00')" for t in texts) or "0"
    listed = ", ".join([*(_selected(c) for c in wanted), f"({nul})"])
    cursor = reader.execute(f"SELECT {listed} FROM {_quoted(table)} ORDER BY {order}")  # noqa: S608
    copied = 0
    try:
        while batch := await asyncio.to_thread(cursor.fetchmany, batch_rows):
            records = [tuple(map(_text, row[:-1])) if row[-1] else row[:-1] for row in batch]
            await conn.copy_records_to_table(table, records=records, columns=names)
            copied += len(records)
    finally:
        cursor.close()
    return copied


def _has_rowid(reader: sqlite3.Connection, table: str) -> bool:
    try:
        reader.execute(f"SELECT rowid FROM {_quoted(table)} LIMIT 0").fetchall()  # noqa: S608
    except sqlite3.OperationalError:  # WITHOUT ROWID
        return False
    return True


def _selected(column: Column) -> str:
    """The column as the target's binary ``COPY`` takes it. The tables are ``STRICT``: values
    already have their column's type (a conversion per value in Python cost more than the
    copy); a blob is cast all the same."""
    name = _quoted(column.name)
    return f"CAST({name} AS BLOB)" if column.kind == "bytea" else name


def _text(value: Any) -> Any:
    """PostgreSQL's text holds no NUL: kept as U+FFFD, as the store writes it
    (``postgres.connection._storable``)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
