"""PostgreSQL's numbered migrations (``postgres/migrations/NNNN_name.sql``), applied once each.

Same rules as SQLite's (``service.store.migrate``): in order, each in its own transaction, a
checksum kept so an edited migration is refused. Any number of processes may start at once:
a transaction-scoped advisory lock makes them migrate one after another, and each later one
finds nothing left to do.
"""

from __future__ import annotations

import time

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service.store.migrate import available

#: the advisory lock key migrations hold (an arbitrary constant: "taskhook" in ASCII, folded)
MIGRATION_LOCK = 0x7461736B686F6F6B


#: a migration may rewrite a large table, and a process that starts beside a migrating one
#: waits for its lock: neither is held to the pool's command timeout
MIGRATION_TIMEOUT_S = 3600.0

PACKAGE = "service.store.postgres.migrations"
Connection = asyncpg.Connection | PoolConnectionProxy


async def pending(conn: Connection) -> list[str]:
    """The migrations this database has not applied yet."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows = await conn.fetch("SELECT version FROM schema_migrations") if exists else []
    done = {row["version"] for row in rows}
    return [m.label for m in available(PACKAGE) if m.version not in done]


async def migrate(conn: Connection) -> list[str]:
    """Apply what is missing; return the names applied (empty when up to date)."""
    done: list[str] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT_S
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at BIGINT NOT NULL)"
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        for migration in available(PACKAGE):
            if migration.version in applied:
                migration.refuse_if_edited(applied[migration.version])
                continue
            async with conn.transaction():  # a savepoint: one migration, all or nothing
                await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT_S)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES ($1, $2, $3, $4)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                    time.time_ns() // 1_000_000,
                )
            done.append(migration.label)
    return done
