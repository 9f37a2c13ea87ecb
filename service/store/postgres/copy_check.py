"""What ``taskhook db copy`` checks before it commits, and how it names the target.

Both sides are read in the copy's own snapshots (SQLite's read transaction, PostgreSQL's write
transaction), so a mismatch means the copy itself is wrong, and raising rolls it back. Checked:
the row count of every copied table; every account's balance (the sum of its credit entries,
zero for an account without any); and the counts by status and outcome that ``/metrics``
reads, as the target's triggers kept them, against a recount of the rows on both sides.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from service.errors import StoreError

#: every account's balance: the sum of its credit entries
BALANCES = (
    "SELECT a.id, COALESCE(SUM(c.delta), 0) FROM accounts a"
    " LEFT JOIN credit_entries c ON c.account_id = a.id GROUP BY a.id"
)
#: the counts ``status_counts`` keeps, counted from the rows themselves
RECOUNT = (
    "SELECT 'tasks', status, COUNT(*) FROM tasks GROUP BY status"
    " UNION ALL SELECT 'callbacks', outcome, COUNT(*) FROM callbacks GROUP BY outcome"
    " UNION ALL SELECT 'deliveries', status, COUNT(*) FROM deliveries GROUP BY status"
)
KEPT = "SELECT kind, status, n FROM status_counts WHERE n <> 0"

Counts = dict[tuple[str, str], int]


class CopyMismatch(StoreError):
    """The copy does not match its source; it was rolled back."""

    code = "copy_mismatch"


@dataclass(frozen=True)
class Check:
    """What agreed: rows per table, each account's balance, each status count."""

    counts: dict[str, int]
    balances: dict[str, int]
    statuses: Counts


async def compare(
    reader: sqlite3.Connection, conn: asyncpg.Connection[Any], tables: list[str]
) -> Check:
    """Compare the copy with its source; raises ``CopyMismatch`` naming what differs."""
    problems: list[str] = []
    counts: dict[str, int] = {}
    for table in tables:
        ident = '"' + table.replace('"', '""') + '"'
        sql = f"SELECT COUNT(*) FROM {ident}"  # noqa: S608
        source = int(reader.execute(sql).fetchone()[0])
        target = int(await conn.fetchval(sql))
        counts[table] = source
        if source != target:
            problems.append(f"{table}: {source} rows in the source, {target} in the target")
    source_balances = {str(a): int(b) for a, b in reader.execute(BALANCES)}
    target_balances = {str(a): int(b) for a, b in await conn.fetch(BALANCES)}
    for account in sorted(source_balances.keys() | target_balances.keys()):
        was, now = source_balances.get(account), target_balances.get(account)
        if was != now:
            problems.append(f"balance of {account}: {was} in the source, {now} in the target")
    source_statuses = _counts(reader.execute(RECOUNT).fetchall())
    kept = _counts(await conn.fetch(KEPT))
    recounted = _counts(await conn.fetch(RECOUNT))
    if not source_statuses == kept == recounted:
        problems.append(
            f"status counts: source {source_statuses}, target kept {kept},"
            f" target recounted {recounted}"
        )
    if problems:
        raise CopyMismatch("the copy did not verify (rolled back): " + "; ".join(problems))
    return Check(counts, source_balances, source_statuses)


def _counts(rows: Any) -> Counts:
    return {(str(kind), str(status)): int(n) for kind, status, n in rows if n}


def redact(text: str, url: str | None = None) -> str:
    """``text`` without the password of ``url`` (``text`` itself when ``url`` is omitted):
    a database URL is shown as ``postgresql://user:***@host/db``."""
    parts = urlsplit(url if url is not None else text)
    password = parts.password
    if not password:
        return text
    if url is None:
        netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    for secret in {password, unquote(password)}:
        text = text.replace(secret, "***")
    return text
