"""The service's database, read-only, at the end: what the checks compare against what the
soak sent and what its receivers got.

Opened with ``mode=ro`` on the live WAL file (the processes may still run): one read
transaction, so every table is seen at the same instant. The soak never writes here.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]

_TABLES = {
    "accounts": "SELECT * FROM accounts",
    "tasks": "SELECT * FROM tasks",
    "timeline": "SELECT * FROM timeline ORDER BY task_id, id",
    "credits": "SELECT * FROM credit_entries ORDER BY id",
    "events": "SELECT id, account_id, type, task_id, payload, created_at, purged_at FROM events",
    "endpoints": "SELECT * FROM endpoints",
    "deliveries": "SELECT * FROM deliveries",
    "attempts": "SELECT * FROM attempts ORDER BY delivery_id, number, rowid",
    "callbacks": "SELECT id, account_id, task_id, provider, provider_task_id, verdict, outcome,"
    " detail, received_at, applied_at, length(body) AS body_length FROM callbacks",
    "idempotency": "SELECT * FROM idempotency_keys",
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


def read(path: Path) -> Snapshot:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")
        now = int(time.time() * 1000)
        tables = {name: [dict(r) for r in conn.execute(sql)] for name, sql in _TABLES.items()}
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Snapshot(now, tables)


def count(path: Path, sql: str, *args: object) -> int:
    """One number, read-only (the drain polls with this)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        (value,) = conn.execute(sql, args).fetchone()
        return int(value)
    finally:
        conn.close()
