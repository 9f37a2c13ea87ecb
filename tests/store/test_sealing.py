"""The store's side of secrets at rest, on real files: rows from before sealing are sealed when
the store opens (and leave no trace in the file), ``reencrypt`` moves every value to the current
key batch by batch, and a sealed value copied into another row does not open there."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest

from service.core.ids import new_id
from service.core.secretbox import SealedSecretError, SecretBox, key_id_of
from service.errors import StoreError
from service.store.delivery_queries import ENDPOINT_COLUMNS
from service.store.sealing import StoredSecrets, reencrypt
from service.store.sqlite import SqliteStore
from tests.backends import writing
from tests.factories import make_endpoint

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer

NOW = 1_780_000_000_000
KEY_A = "secret-key-a-0123456789abcdefghijklmnopqrstuvwxyz"
KEY_B = "secret-key-b-0123456789abcdefghijklmnopqrstuvwxyz"
ANY_SECRET = re.compile(rb"whsec_[A-Za-z0-9+/]{8}")


def file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def values(path: Path) -> dict[str, tuple[str, str | None]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, secret, previous_secret FROM endpoints").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


async def old_database(path: Path, count: int) -> list[str]:
    """A database as it was before sealing: migrated, with ``count`` endpoints whose secrets
    (and the first one's previous secret) are in the clear. Returns the secrets."""
    bare = SqliteStore(path)  # no box: the SQL migrations only
    await bare.open()
    await bare.close()
    account = new_id("acct", NOW)
    plain = []
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES (?, 'old', ?)", (account, NOW)
        )
        for n in range(count):
            e = make_endpoint(account, now=NOW + n)
            previous = make_endpoint(account).secret if n == 0 else None
            conn.execute(
                f"INSERT INTO endpoints ({ENDPOINT_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, NULL, 1, NULL, ?, ?, ?, NULL, ?, ?, NULL)",
                (e.id, account, e.url, "", e.secret, previous, NOW + 1 if previous else None,
                 NOW, NOW),
            )  # fmt: skip
            plain += [e.secret, *([previous] if previous else [])]
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return plain


async def test_plaintext_rows_are_sealed_on_open_once_and_leave_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    plain = await old_database(path, 3)
    assert all(s.encode() in file_bytes(path) for s in plain)  # the test's premise

    store = SqliteStore(path, secrets=SecretBox.from_keys(KEY_A))
    applied = await store.open()
    try:
        opened = [await store.get_endpoint_by_id(endpoint_id) for endpoint_id in values(path)]
    finally:
        await store.close()
    again = SqliteStore(path, secrets=SecretBox.from_keys(KEY_A))
    reapplied = await again.open()
    await again.close()

    assert applied == ["seal_endpoint_secrets (4 sealed)"]
    assert reapplied == []
    assert sorted(s for e in opened if e for s in (e.secret, e.previous_secret) if s) == sorted(
        plain
    )
    stored = [v for pair in values(path).values() for v in pair if v is not None]
    assert {key_id_of(v) for v in stored} == {SecretBox.from_keys(KEY_A).current.key_id}
    assert not ANY_SECRET.search(file_bytes(path))  # zeroed in the file, the WAL truncated


async def test_reencrypt_moves_every_value_batch_by_batch_deleted_endpoints_too(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.db"
    await old_database(path, 5)
    first = SqliteStore(path, secrets=SecretBox.from_keys(KEY_A))
    await first.open()
    (deleted, *_) = values(path)
    async with first.transaction() as tx:
        found = await tx.get_endpoint_by_id(deleted)
        assert found is not None
        assert await tx.delete_endpoint(found.account_id, deleted, NOW + 10)
    await first.close()
    under_a = values(path)

    box = SecretBox.from_keys(KEY_B, [KEY_A])
    store = SqliteStore(path, secrets=box)
    await store.open()
    try:
        moved = await store.db.exclusive(partial(reencrypt, secrets=StoredSecrets(box), batch=2))
        nothing = await store.reencrypt_secrets()
        opened = {i: await store.get_endpoint_by_id(i) for i in values(path)}
    finally:
        await store.close()

    assert (moved, nothing) == (6, 0)
    after = values(path)
    assert {key_id_of(v) for pair in after.values() for v in pair if v} == {box.current.key_id}
    assert all(after[i][0] != under_a[i][0] for i in after)
    before = SecretBox.from_keys(KEY_A)  # what the values were sealed under at first
    for endpoint_id, endpoint in opened.items():
        assert endpoint is not None
        secret, previous = under_a[endpoint_id]
        assert endpoint.secret == before.open(secret, f"endpoints.secret:{endpoint_id}")
        if previous is not None:
            assert endpoint.previous_secret == before.open(
                previous, f"endpoints.previous_secret:{endpoint_id}"
            )


async def test_a_sealed_value_copied_into_another_row_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await old_database(path, 2)
    store = SqliteStore(path, secrets=SecretBox.from_keys(KEY_A))
    await store.open()
    try:
        one, two = values(path)
        async with writing(store) as conn:
            await conn.execute(
                "UPDATE endpoints SET secret = (SELECT secret FROM endpoints WHERE id = ?)"
                " WHERE id = ?",
                (one, two),
            )
        assert await store.get_endpoint_by_id(one) is not None
        with pytest.raises(SealedSecretError, match="belongs to another row"):
            await store.get_endpoint_by_id(two)
    finally:
        await store.close()


async def test_a_store_without_a_box_refuses_to_write_an_endpoint(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        with pytest.raises(StoreError, match="without a secret key"):
            async with store.transaction() as tx:
                await tx.insert_endpoint(make_endpoint("acct_x", now=NOW))
    finally:
        await store.close()
    assert values(tmp_path / "n.db") == {}
