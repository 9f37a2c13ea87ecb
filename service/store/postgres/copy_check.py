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
from service.store.postgres import copy_derived
from service.store.postgres.copy_derived import Counts, Derived

#: every account's balance: the sum of its credit entries
BALANCES = (
    "SELECT a.id, COALESCE(SUM(c.delta), 0) FROM accounts a"
    " LEFT JOIN credit_entries c ON c.account_id = a.id GROUP BY a.id"
)


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
    reader: sqlite3.Connection,
    conn: asyncpg.Connection[Any],
    tables: list[str],
    derived: list[Derived],
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
    statuses, differ = await copy_derived.compare(reader, conn, derived)
    problems += differ
    if problems:
        raise CopyMismatch("the copy did not verify (rolled back): " + "; ".join(problems))
    return Check(counts, source_balances, statuses)


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
