"""``GET /readyz`` when the database does not take writes: a 503 in the error shape with
``Retry-After``, never a 500; ready again by itself once the database does. (PostgreSQL's lost
server: tests/faults.) Here SQLite's: another process holds the write lock past the busy
timeout."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from service.settings import Settings, load_settings
from tests.conftest import EXTERNAL_PROVIDERS, settings_env

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = settings_env(tmp_path, TASKHOOK__STORAGE__BUSY_TIMEOUT_MS="200", **EXTERNAL_PROVIDERS)
    return load_settings(env)


async def test_a_held_write_lock_is_503_store_busy_with_retry_after_then_ready(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/readyz")).status_code == 200
    with closing(sqlite3.connect(settings.storage.database_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        response = await client.get("/readyz")
        other.execute("ROLLBACK")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_busy"
    assert response.json()["status"] == "unavailable"
    assert response.headers["retry-after"] == "1"
    assert (await client.get("/readyz")).json() == {"status": "ok", "database": "writable"}
