"""The service's database, read-only, at the end: what the checks compare against what the
soak sent and what its receivers got.

SQLite (a ``Path``) is opened with ``mode=ro`` on the live WAL file (the processes may still
run); PostgreSQL (a ``postgresql://`` URL) is read in one ``REPEATABLE READ READ ONLY``
transaction. Either way every table is seen at the same instant, and the soak never writes.
PostgreSQL's values are given the shapes SQLite's have (booleans as 0/1, timestamps as unix ms,
JSON as text), so the checks judge both with the same code.
"""

from __future__ import annotations

import datetime
import decimal
import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

#: where the service keeps its data: a SQLite file, or a PostgreSQL URL
Source = Path | str

Row = dict[str, Any]

_TABLES = {
    "accounts": "SELECT * FROM accounts",
    "tasks": "SELECT * FROM tasks",
    "timeline": "SELECT * FROM timeline ORDER BY task_id, id",
    "credits": "SELECT * FROM credit_entries ORDER BY id",
    "events": "SELECT id, account_id, type, task_id, payload, created_at, purged_at FROM events",
    "endpoints": "SELECT * FROM endpoints",
    "deliveries": "SELECT * FROM deliveries",
    "attempts": "SELECT * FROM attempts ORDER BY delivery_id, number, {insertion}",
    "callbacks": "SELECT id, account_id, task_id, provider, provider_task_id, verdict, outcome,"
    " detail, received_at, applied_at, length(body) AS body_length FROM callbacks",
    "idempotency": "SELECT * FROM idempotency_keys",
    "assets": "SELECT * FROM assets",
    "mirrors": "SELECT * FROM mirrors",
}


@dataclass
class Snapshot:
    #: wall clock (unix ms) when it was read, to judge leases and schedules against
    now_ms: int
    tables: dict[str, list[Row]]
    timeline_by_task: dict[str, list[Row]] = field(default_factory=dict)
    credits_by_task: dict[str, list[Row]] = field(default_factory=dict)
    events_by_task: dict[str, list[Row]] = field(default_factory=dict)
    attempts_by_delivery: dict[str, list[Row]] = field(default_factory=dict)
    callbacks_by_task: dict[str, list[Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timeline_by_task = _group(self.tables["timeline"], "task_id")
        self.credits_by_task = _group(self.tables["credits"], "task_id")
        self.events_by_task = _group(self.tables["events"], "task_id")
        self.attempts_by_delivery = _group(self.tables["attempts"], "delivery_id")
        self.callbacks_by_task = _group(self.tables["callbacks"], "task_id")

    def __getattr__(self, name: str) -> list[Row]:
        try:
            return self.tables[name]
        except KeyError:
            raise AttributeError(name) from None

    def by_id(self, table: str) -> dict[str, Row]:
        return {row["id"]: row for row in self.tables[table]}


def _group(rows: list[Row], key: str) -> dict[str, list[Row]]:
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row[key] is not None:
            grouped[row[key]].append(row)
    return dict(grouped)


async def read(source: Source) -> Snapshot:
    if isinstance(source, Path):
        return _read_sqlite(source)
    conn = await asyncpg.connect(source, timeout=30)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            now = int(time.time() * 1000)
            tables = {}
            for name, sql in _TABLES.items():
                sql = sql.format(insertion="created_at, id")
                tables[name] = [{k: _plain(v) for k, v in r.items()} for r in await conn.fetch(sql)]
    finally:
        await conn.close()
    return Snapshot(now, tables)


def _read_sqlite(path: Path) -> Snapshot:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")
        now = int(time.time() * 1000)
        tables = {
            name: [dict(r) for r in conn.execute(sql.format(insertion="rowid"))]
            for name, sql in _TABLES.items()
        }
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Snapshot(now, tables)


def _plain(value: Any) -> Any:
    """A PostgreSQL value as SQLite would have handed it back."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return int(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


async def count(source: Source, sql: str) -> int:
    """One number, read-only (the drain polls with this)."""
    if isinstance(source, str):
        conn = await asyncpg.connect(source, timeout=30)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()
    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        (value,) = lite.execute(sql).fetchone()
        return int(value)
    finally:
        lite.close()
