"""The tables ``taskhook db copy`` does not copy: those the target keeps itself.

*Derived* tables are counts the target's triggers keep (``status_counts``: tasks, callbacks and
deliveries by status; ``attempt_counts``, once the fleet migration adds it: attempts by
outcome). Copying SQLite's would count every row twice, once copied and once by the trigger;
instead the copy switches those triggers off for its transaction, and rebuilds each count from
the rows that arrived. Counting row by row would also be slow: each copied row re-updates the
same few count rows, whose versions pile up until the commit (20 000 tasks took 50 s). Switching
a trigger off needs the tables' owner; a role that is not one copies with the triggers counting
(slow, but right). Either way the check compares each count with a recount on both sides.

*Bookkeeping* tables are the target's own: its ``schema_migrations``, and ``job_runs`` (when the
fleet last ran each periodic job: a process started on the target before the copy may have
written one; the next run simply happens).

Every entry applies only where its table exists, so the copy works before and after the
migrations that add them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import asyncpg

#: never copied nor required empty: the target's own record of itself
BOOKKEEPING = frozenset({"schema_migrations", "job_runs", "sqlite_sequence"})

#: how an attempt counts (the core's judge() of its status code), in both dialects
_OUTCOME = (
    "CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered'"
    " WHEN status_code = 410 THEN 'gone' ELSE 'failed' END"
)

Counts = dict[tuple[str, ...], int]


@dataclass(frozen=True)
class Derived:
    """A table of counts kept by triggers: which triggers, how to rebuild it, how to compare."""

    table: str
    #: (table, trigger) pairs that write it
    triggers: tuple[tuple[str, str], ...]
    #: the counts from the rows themselves, as (key…, n) rows; valid SQL in both dialects
    recount: str
    #: what the table holds, in the same shape
    kept: str
    #: PostgreSQL: make the table what ``recount`` says
    rebuild: str


#: tasks, callbacks and deliveries counted by status (callbacks: by outcome)
STATUS_RECOUNT = (
    "SELECT 'tasks', status, COUNT(*) FROM tasks GROUP BY status"
    " UNION ALL SELECT 'callbacks', outcome, COUNT(*) FROM callbacks GROUP BY outcome"
    " UNION ALL SELECT 'deliveries', status, COUNT(*) FROM deliveries GROUP BY status"
)

DERIVED = (
    Derived(
        table="status_counts",
        triggers=(
            ("tasks", "tasks_counted"),
            ("callbacks", "callbacks_counted"),
            ("deliveries", "deliveries_counted"),
        ),
        recount=STATUS_RECOUNT,
        kept="SELECT kind, status, SUM(n) FROM status_counts GROUP BY kind, status",
        # into shard 0 (the column's default), over the zeros an empty target may hold
        rebuild=f"INSERT INTO status_counts AS c (kind, status, n) {STATUS_RECOUNT}"
        " ON CONFLICT (kind, status, shard) DO UPDATE SET n = excluded.n",
    ),
    Derived(
        table="attempt_counts",
        triggers=(("attempts", "attempts_counted"),),
        recount=f"SELECT {_OUTCOME}, COUNT(*) FROM attempts GROUP BY 1",  # noqa: S608
        kept="SELECT outcome, SUM(n) FROM attempt_counts GROUP BY outcome",
        # sharded on PostgreSQL (0002): the whole count in shard 0, any other shard emptied
        rebuild=(
            "UPDATE attempt_counts SET n = CASE WHEN shard = 0 THEN (SELECT COUNT(*)"  # noqa: S608
            f" FROM attempts WHERE {_OUTCOME} = attempt_counts.outcome) ELSE 0 END"
        ),
    ),
)
DERIVED_TABLES = frozenset(d.table for d in DERIVED)


async def present(conn: asyncpg.Connection[Any]) -> list[Derived]:
    """The derived tables this target has."""
    return [d for d in DERIVED if await conn.fetchval("SELECT to_regclass($1)", d.table)]


async def pause(conn: asyncpg.Connection[Any], derived: list[Derived]) -> bool:
    """Switch the counting triggers off for this transaction; False (nothing changed) when
    the role may not (it does not own the tables). Transactional: a failed copy rolls the
    switch back with everything else."""
    try:
        async with conn.transaction():  # a savepoint: refused, nothing is left half done
            for table, trigger in await _triggers(conn, derived):
                await conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def resume(conn: asyncpg.Connection[Any], derived: list[Derived]) -> None:
    """Every derived table rebuilt from the copied rows, and its triggers on again."""
    for d in derived:
        await conn.execute(d.rebuild)
    for table, trigger in await _triggers(conn, derived):
        await conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"')


async def _triggers(conn: asyncpg.Connection[Any], derived: list[Derived]) -> list[tuple[str, str]]:
    wanted = [pair for d in derived for pair in d.triggers]
    exist = {
        (row[0], row[1])
        for row in await conn.fetch(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
        )
    }
    return [pair for pair in wanted if pair in exist]


async def compare(
    reader: sqlite3.Connection, conn: asyncpg.Connection[Any], derived: list[Derived]
) -> tuple[Counts, list[str]]:
    """Each derived table as kept against a recount of the target's rows and of the
    source's; returns the counts and what differs."""
    agreed: Counts = {}
    problems: list[str] = []
    for d in derived:
        source = _counts(d.table, reader.execute(d.recount).fetchall())
        kept = _counts(d.table, await conn.fetch(d.kept))
        recounted = _counts(d.table, await conn.fetch(d.recount))
        if not source == kept == recounted:
            problems.append(
                f"{d.table}: source {source}, target kept {kept}, target recounted {recounted}"
            )
        agreed.update(source)
    return agreed, problems


def _counts(table: str, rows: Any) -> Counts:
    """(table, key…) → n, zeros left out (a count row may stay at zero)."""
    return {(table, *map(str, row[:-1])): int(row[-1]) for row in rows if row[-1]}
