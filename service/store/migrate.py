"""Numbered migrations: ``migrations/NNNN_name.sql``, each applied once, in order, atomically.

A checksum of each applied file is kept: editing a migration that already ran is refused, since
databases that ran the old text would silently differ from new ones.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources

from service.errors import StoreError

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def refuse_if_edited(self, applied_checksum: str) -> None:
        """Raise if the file differs from the text a database already applied."""
        if applied_checksum != self.checksum:
            raise StoreError(
                f"migration {self.label} changed after it was applied; add a new migration instead"
            )


def available(package: str = "service.store.migrations") -> list[Migration]:
    """The migrations shipped in ``package`` (SQLite's by default), in version order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def pending(conn: sqlite3.Connection) -> list[str]:
    """The migrations this database has not applied yet."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchall()
    done = (
        {r[0] for r in conn.execute("SELECT version FROM schema_migrations")} if exists else set()
    )
    return [m.label for m in available() if m.version not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply what is missing; return the names applied (empty when up to date)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        " applied_at INTEGER NOT NULL) STRICT"
    )
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    applied = {row[0]: (row[1], row[2]) for row in rows}
    done = []
    for migration in available():
        if migration.version in applied:
            migration.refuse_if_edited(applied[migration.version][1])
            continue
        # Safe to format: the name matched [a-z0-9_]+ and the checksum is hex.
        record = (
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES "  # noqa: S608
            f"({migration.version}, '{migration.name}', '{migration.checksum}', "
            f"{time.time_ns() // 1_000_000});"
        )
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n{record}\nCOMMIT;")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(migration.label)
    return done
