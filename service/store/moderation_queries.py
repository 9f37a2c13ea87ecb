"""SQL for the moderation decision log: the decisions of one submit written together, and the
filtered, paged log of one account or (for admin keys) of all of them.

Blocks are a small part of the log, so their filters read partial indexes that hold the blocks
alone (see migration 0006); the verdict is therefore written into the SQL as a literal, which
is what lets SQLite match a partial index's ``WHERE verdict = 'blocked'``.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.core.pagination import PageRequest
from service.store.base import MODERATION_VERDICTS, DecisionFilter, ModerationDecision
from service.store.rows import Row, Sql

DECISION_COLUMNS = (
    "id, account_id, key_id, verdict, stage, rule_id, category, error, prompt_sha256, created_at"
)


def decision_from_row(row: Row) -> ModerationDecision:
    return ModerationDecision(
        id=row["id"],
        account_id=row["account_id"],
        key_id=row["key_id"],
        verdict=row["verdict"],
        stage=row["stage"],
        rule_id=row["rule_id"],
        category=row["category"],
        error=row["error"],
        prompt_sha256=row["prompt_sha256"],
        created_at=row["created_at"],
    )


class ModerationQueries(Sql):
    async def insert_moderation_decisions(self, decisions: Sequence[ModerationDecision]) -> None:
        await self._conn.executemany(
            f"INSERT INTO moderation_decisions ({DECISION_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    d.id,
                    d.account_id,
                    d.key_id,
                    d.verdict,
                    d.stage,
                    d.rule_id,
                    d.category,
                    d.error,
                    d.prompt_sha256,
                    d.created_at,
                )
                for d in decisions
            ],
        )

    async def list_moderation_decisions(
        self, where: DecisionFilter, page: PageRequest
    ) -> list[ModerationDecision]:
        rows = await self._all(*decision_page_query(where, page))
        return [decision_from_row(r) for r in rows]


def decision_page_query(
    where: DecisionFilter, page: PageRequest
) -> tuple[str, tuple[str | int, ...]]:
    """The SQL and arguments of one page of the log, newest first, ``limit + 1`` rows."""
    clauses = ["id < ?"]
    args: list[str | int] = [page.before or "~"]
    if where.account_id is not None:
        clauses.append("account_id = ?")
        args.append(where.account_id)
    if where.verdict is not None:
        if where.verdict not in MODERATION_VERDICTS:  # it is about to become SQL text
            raise ValueError(f"unknown verdict {where.verdict!r}")
        clauses.append(f"verdict = '{where.verdict}'")
    if where.category is not None:
        clauses.append("category = ?")
        args.append(where.category)
    sql = (
        f"SELECT {DECISION_COLUMNS} FROM moderation_decisions"  # noqa: S608
        f" WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?"
    )
    return sql, (*args, page.limit + 1)
