"""The moderation decision log in SQLite: migration 0006 carries the old block log over, and
every page the listing can ask for is read through an index, never a scan or a sort."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from service.core.ids import new_id
from service.core.pagination import PageRequest
from service.store import migrate as migrate_module
from service.store.base import DecisionFilter
from service.store.migrate import migrate
from service.store.moderation_queries import decision_page_query
from service.store.sqlite import SqliteStore
from tests.backends import reader

NOW = 1_780_000_000_000


def test_the_migration_keeps_the_old_blocks_as_blocked_rules_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    try:
        with monkeypatch.context() as patch:
            before = [m for m in migrate_module.available() if m.version < 6]
            patch.setattr(migrate_module, "available", lambda: before)
            migrate(conn)  # a database as 0005 left it
        account = new_id("acct", NOW)
        blocks = [
            (new_id("mod", NOW + i), account, rule, category, f"{i:064x}", NOW + i)
            for i, (rule, category) in enumerate(
                [("sexual-explicit", "sexual"), ("violence-gore", "violence")]
            )
        ]
        conn.execute("INSERT INTO accounts VALUES (?, 'old', ?)", (account, NOW))
        conn.executemany("INSERT INTO moderation_log VALUES (?, ?, ?, ?, ?, ?)", blocks)

        assert migrate(conn)[0] == "0006_moderation_decisions"

        kept = conn.execute(
            "SELECT id, account_id, key_id, verdict, stage, rule_id, category, error,"
            " prompt_sha256, created_at FROM moderation_decisions ORDER BY id"
        ).fetchall()
        assert kept == [
            (id_, acct, None, "blocked", "rules", rule, cat, None, digest, at)
            for id_, acct, rule, cat, digest, at in blocks
        ]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "moderation_log" not in tables
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("account_id", "verdict", "category", "index"),
    [
        (account, verdict, category, index)
        for (account, verdict, category), index in zip(
            itertools.product(["acct_x", None], [None, "allowed", "blocked"], [None, "sexual"]),
            [
                "moderation_decisions_by_account",
                "moderation_blocks_by_account_category",
                "moderation_decisions_by_account",
                "moderation_blocks_by_account_category",
                "moderation_blocks_by_account",
                "moderation_blocks_by_account_category",
                "sqlite_autoindex_moderation_decisions_1",  # the primary key
                "moderation_blocks_by_category",
                "sqlite_autoindex_moderation_decisions_1",
                "moderation_blocks_by_category",
                "moderation_blocks",
                "moderation_blocks_by_category",
            ],
            strict=True,
        )
    ],
)
async def test_every_listing_reads_an_index_in_order(
    tmp_path: Path, account_id: str | None, verdict: str | None, category: str | None, index: str
) -> None:
    store = SqliteStore(tmp_path / "plans.db")
    await store.open()
    try:
        sql, args = decision_page_query(
            DecisionFilter(account_id, verdict, category), PageRequest(20, new_id("mod", NOW))
        )
        async with reader(store).execute(f"EXPLAIN QUERY PLAN {sql}", args) as cursor:
            plan = [row[3] for row in await cursor.fetchall()]
    finally:
        await store.close()
    assert len(plan) == 1, plan  # no "USE TEMP B-TREE FOR ORDER BY": the index is the order
    assert plan[0].startswith(f"SEARCH moderation_decisions USING INDEX {index} ("), plan


def test_an_unknown_verdict_never_reaches_the_sql() -> None:
    with pytest.raises(ValueError, match="verdict"):
        decision_page_query(DecisionFilter(None, "x' OR '1'='1"), PageRequest(20))
