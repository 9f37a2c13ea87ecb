"""``taskhook db copy``: a SQLite database filled through the API and the store's own writes,
copied into an empty PostgreSQL schema, is served the same by a ``PostgresStore`` opened on the
copy; a target that holds anything is refused untouched; a copy that fails part-way leaves the
target empty; the command's exit codes, and the target's password never shown."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from service.core.clock import system_clock
from service.core.ledger import Failure, TaskStatus
from service.core.pagination import PageRequest
from service.errors import StoreError
from service.settings import PROJECT_ROOT
from service.store.base import TaskFilter
from service.store.migrate import available
from service.store.postgres.copy import CopyRefused, copy_database
from service.store.postgres.copy_check import CopyMismatch, compare, redact
from service.store.postgres.copy_derived import STATUS_RECOUNT, present
from service.store.postgres.migrate import PACKAGE as PG_MIGRATIONS
from service.store.postgres.store import PostgresStore
from service.usecases import create_account
from tests import backends
from tests.conftest import settings_env
from tests.factories import SECRET_BOX
from tests.store.copy_source import (
    BODY,
    SqliteStoreView,
    fill,
    pg_rows,
    sqlite_rows,
    sqlite_settings,
)

pytestmark = pytest.mark.postgres_only

TABLES = (
    "accounts", "api_keys", "tasks", "credit_entries", "timeline", "events", "idempotency_keys",
    "callbacks", "endpoints", "deliveries", "attempts", "moderation_decisions",
)  # fmt: skip


async def counts(url: str) -> dict[str, int]:
    return {t: (await pg_rows(url, f"SELECT COUNT(*) FROM {t}"))[0][0] for t in TABLES}  # noqa: S608


async def test_the_copy_serves_the_same_data(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    # a secret left in the clear in the file is sealed before anything crosses over
    conn = sqlite3.connect(filled.path)
    conn.execute("UPDATE endpoints SET secret = ?", (filled.endpoint_secret,))
    conn.commit()
    conn.close()
    source = SqliteStoreView(filled.path)

    report = await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX, batch_rows=2)

    assert report.check is not None
    assert report.recounted  # the owner copies with the counting triggers off, then recounts
    assert report.rows == {t: source.count(t) for t in report.rows}
    assert set(TABLES) <= set(report.rows)
    assert all(report.rows[t] > 0 for t in TABLES), report.rows
    assert await counts(backends.CURRENT.url) == {t: source.count(t) for t in TABLES}
    own = await pg_rows(backends.CURRENT.url, "SELECT name FROM schema_migrations ORDER BY version")
    assert [r[0] for r in own] == [m.name for m in available(PG_MIGRATIONS)]  # not SQLite's
    stored = await pg_rows(backends.CURRENT.url, "SELECT secret FROM endpoints")
    assert not any("whsec_" in row[0] for row in stored)
    for table, order in (("timeline", "id"), ("deliveries", "id"), ("attempts", "id")):
        # insertion order kept: PostgreSQL's rowid numbers rows as SQLite's rowid did
        was = [r[0] for r in sqlite_rows(filled.path, f"SELECT id FROM {table} ORDER BY rowid")]  # noqa: S608
        now = await pg_rows(backends.CURRENT.url, f"SELECT {order} FROM {table} ORDER BY rowid")  # noqa: S608
        assert [r[0] for r in now] == was

    store = PostgresStore(backends.CURRENT.url, secrets=SECRET_BOX)
    assert await store.open() == []  # nothing to migrate, nothing left to seal
    try:
        balances = source.balances(filled.accounts)
        assert [await store.balance(a) for a in filled.accounts] == balances
        assert balances[0] < 1000  # charged, and one refunded
        assert balances[2] == 0  # never granted
        acme = filled.accounts[0]
        tasks = await store.list_tasks(acme, TaskFilter(), PageRequest(limit=100))
        assert [t.id for t in tasks] == source.ids("tasks", acme)
        failed = [t for t in tasks if t.state.status is TaskStatus.FAILED]
        assert failed
        assert failed[0].state.failure == Failure("provider_error", "nul \ufffd in it")
        assert failed[0].refunded_credits == failed[0].cost_credits
        endpoint = await store.get_endpoint(acme, filled.endpoint_id)
        assert endpoint is not None
        assert endpoint.secret == filled.endpoint_secret
        callbacks = await store.list_callbacks(acme, None, PageRequest(limit=100))
        assert callbacks
        assert all(c.body == BODY for c in callbacks)
        deliveries = await store.list_deliveries_for_endpoint(
            filled.endpoint_id, None, PageRequest(limit=100)
        )
        assert {d.status for d in deliveries} == {"delivered", "pending"}
        attempts = await store.list_attempts(deliveries[0].id)
        assert [a.response_body for a in attempts] == ["ok\ufffd"]
    finally:
        await store.close()
    kept = await pg_rows(
        backends.CURRENT.url,
        "SELECT kind, status, SUM(n) FROM status_counts GROUP BY kind, status HAVING SUM(n) <> 0",
    )
    assert set(kept) == set(sqlite_rows(filled.path, STATUS_RECOUNT))


async def test_a_target_that_holds_anything_is_refused_untouched(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    other = await fill(sqlite_settings(tmp_path / "other"))
    await copy_database(other.path, backends.CURRENT.url, SECRET_BOX)
    before = await counts(backends.CURRENT.url)
    snapshot = await pg_rows(backends.CURRENT.url, "SELECT id FROM accounts ORDER BY id")

    with pytest.raises(CopyRefused, match="not empty"):
        await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX)

    assert await counts(backends.CURRENT.url) == before
    assert await pg_rows(backends.CURRENT.url, "SELECT id FROM accounts ORDER BY id") == snapshot


async def test_a_single_row_anywhere_is_enough_to_refuse(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    store = PostgresStore(backends.CURRENT.url, secrets=SECRET_BOX)
    await store.open()
    try:
        await create_account(store, system_clock, "already here")
    finally:
        await store.close()
    with pytest.raises(CopyRefused, match=r"accounts"):
        await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX)
    assert (await counts(backends.CURRENT.url))["accounts"] == 1


async def test_a_copy_that_fails_part_way_leaves_the_target_empty(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    # an attempt whose delivery is gone: SQLite kept it (foreign keys off), PostgreSQL refuses
    # it — after every other table, attempts come last but for moderation decisions
    conn = sqlite3.connect(filled.path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO attempts (id, delivery_id, number, latency_ms, created_at)"
        " VALUES ('att_orphan', 'dlv_gone', 1, 1, 1)"
    )
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match="rolled back") as failed:
        await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX, batch_rows=1)

    assert not isinstance(failed.value, CopyRefused)
    assert set((await counts(backends.CURRENT.url)).values()) == {0}
    kept = await pg_rows(backends.CURRENT.url, "SELECT * FROM status_counts WHERE n <> 0")
    assert kept == []
    # and once the source is mended, the same target takes the copy
    conn = sqlite3.connect(filled.path)
    conn.execute("DELETE FROM attempts WHERE id = 'att_orphan'")
    conn.commit()
    conn.close()
    await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX)


def test_redact_hides_the_password() -> None:
    url = "postgresql://app:s3cr%40t@db.example:5432/th"
    assert redact(url) == "postgresql://app:***@db.example:5432/th"
    assert redact("auth failed for s3cr@t and s3cr%40t", url) == "auth failed for *** and ***"
    assert redact("postgresql://app@db/th") == "postgresql://app@db/th"


def _cli(tmp_path: Path, *args: str, configured: str = "") -> subprocess.CompletedProcess[str]:
    database = configured or f"sqlite:///{tmp_path / 'source.db'}"
    env = {**os.environ, **settings_env(tmp_path, TASKHOOK_DATABASE_URL=database)}
    return subprocess.run(
        [sys.executable, "-m", "service", "db", "copy", *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _with_password(url: str, password: str) -> str:
    """The test URL with a password (trust auth ignores it)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


async def test_the_command_end_to_end(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    password = "hunter2-Very-Secret"
    target = _with_password(backends.CURRENT.url, password)
    assert password in target

    done = _cli(tmp_path, "--to", target)
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout
    assert "accounts" in done.stdout
    assert await counts(backends.CURRENT.url) == {
        t: SqliteStoreView(filled.path).count(t) for t in TABLES
    }

    again = _cli(tmp_path, "--to", target, "--from", f"sqlite:///{filled.path}")
    assert again.returncode == 1
    assert "not empty" in again.stderr

    (tmp_path / "not.db").write_text("not a database, but long enough to be read as one" * 40)
    garbage = _cli(tmp_path, "--to", target, "--from", f"sqlite:///{tmp_path / 'not.db'}")
    assert garbage.returncode == 1
    assert "cannot be read as a SQLite database" in garbage.stderr

    nowhere = _cli(tmp_path, "--to", target, "--from", f"sqlite:///{tmp_path / 'none.db'}")
    assert nowhere.returncode == 1
    assert "no SQLite database" in nowhere.stderr
    assert not (tmp_path / "none.db").exists()

    unreachable = _cli(tmp_path, "--to", f"postgresql://postgres:{password}@127.0.0.1:9/x")
    assert unreachable.returncode == 1
    assert "***" in unreachable.stderr

    wrong = _cli(tmp_path, "--to", "sqlite:///elsewhere.db")
    assert wrong.returncode == 1
    assert "postgresql://" in wrong.stderr
    configured = _cli(tmp_path, "--to", target, configured=target)
    assert configured.returncode == 1
    assert "name the SQLite one with --from" in configured.stderr
    for run in (done, again, garbage, nowhere, unreachable, wrong, configured):
        assert password not in run.stdout + run.stderr


async def test_the_check_names_what_differs(tmp_path: Path) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    report = await copy_database(filled.path, backends.CURRENT.url, SECRET_BOX)
    conn = await asyncpg.connect(backends.CURRENT.url, timeout=5)
    reader = sqlite3.connect(filled.path)
    try:
        derived = await present(conn)
        assert await compare(reader, conn, list(report.rows), derived) == report.check
        await conn.execute("DELETE FROM credit_entries WHERE kind = 'refund'")
        await conn.execute("UPDATE status_counts SET n = n + 1 WHERE kind = 'tasks'")
        with pytest.raises(CopyMismatch) as differs:
            await compare(reader, conn, list(report.rows), derived)
    finally:
        reader.close()
        await conn.close()
    message = differs.value.message
    assert "credit_entries: " in message
    assert f"balance of {filled.accounts[0]}" in message
    assert "status_counts: " in message


async def test_a_role_that_does_not_own_the_tables_copies_with_the_triggers_counting(
    tmp_path: Path,
) -> None:
    filled = await fill(sqlite_settings(tmp_path))
    store = PostgresStore(backends.CURRENT.url, secrets=SECRET_BOX)
    await store.open()  # migrated by the owner
    await store.close()
    role = f"th_copy_{secrets.token_hex(3)}"
    schema = backends.CURRENT.url.rsplit("search_path=", 1)[1]
    grants = [
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    ]
    await pg_rows(backends.CURRENT.url, grants[0])
    try:
        as_role = backends.CURRENT.url.replace("postgresql://postgres@", f"postgresql://{role}@")
        with pytest.raises(StoreError, match="refused \\(nothing copied\\)"):  # no rights yet
            await copy_database(filled.path, as_role, SECRET_BOX)
        for sql in grants[1:]:
            await pg_rows(backends.CURRENT.url, sql)
        report = await copy_database(filled.path, as_role, SECRET_BOX)
        assert not report.recounted
        assert report.check is not None
        assert await counts(backends.CURRENT.url) == {
            t: SqliteStoreView(filled.path).count(t) for t in TABLES
        }
    finally:
        await pg_rows(backends.CURRENT.url, f"DROP OWNED BY {role}")
        await pg_rows(backends.CURRENT.url, f"DROP ROLE {role}")
