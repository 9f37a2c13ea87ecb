"""The data dir is private (0700) and every file in it 0600, whatever the umask.

The database holds callback bodies, key hashes and webhook secrets; SQLite creates its files
0644 less the umask, so they were readable by every local user. Each test runs under umask 0,
the worst case: whatever is not set explicitly shows up as world-writable.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tests.conftest import settings_env

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer


@pytest.fixture(autouse=True)
def no_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(data_dir: Path) -> dict[str, int]:
    """The mode of every file under the data dir (the asset store's folders included: each
    must be 0700, checked here too, so a folder that is not counts as a file that is not)."""
    modes = {}
    for path in data_dir.rglob("*"):
        if path.is_dir():
            assert _mode(path) == 0o700, path
        else:
            modes[str(path.relative_to(data_dir))] = _mode(path)
    return modes


async def _use(data_dir: Path, env: dict[str, str] | None = None) -> dict[str, int]:
    """Run the app on ``data_dir`` with writes in WAL (not yet checkpointed); the file modes
    seen while it is open, then checked again after it closed."""
    settings = load_settings(settings_env(data_dir) if env is None else env)
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        store: SqliteStore = app.state.services.store
        account = await create_account(store, system_clock, "acme", 100)
        _, key = await create_api_key(store, system_clock, account.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"Authorization": f"Bearer {key}"}
            body = {"prompt": "a red fox", "model": "nano-banana"}
            assert (await client.post("/v1/tasks", json=body, headers=headers)).status_code == 202
        seen = _modes(data_dir)
    assert _mode(data_dir) == 0o700
    assert set(_modes(data_dir).values()) <= {0o600}
    return seen


async def test_a_new_data_dir_and_its_files_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    env = settings_env(data_dir)
    del env["TASKHOOK_SECRET_KEY"]  # development writes its generated key there too
    seen = await _use(data_dir, env)
    assert {"taskhook.db", "taskhook.db-wal", "taskhook.db-shm", "secret_key"} <= set(seen)
    assert seen == dict.fromkeys(seen, 0o600)


async def test_an_existing_data_dir_of_ours_is_tightened(tmp_path: Path) -> None:
    """What earlier versions left: a 0755 dir with 0644 database files."""
    data_dir = tmp_path / "data"
    await _use(data_dir)
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)
    await _use(data_dir)


async def test_a_shared_data_dir_is_left_as_it_is(tmp_path: Path) -> None:
    """A directory someone else owns (say a shared volume) keeps its mode; taskhook's own files
    in it are still 0600, and it starts."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory owned by another user")
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o777)
    data_dir.chmod(0o777)
    os.chown(data_dir, 65534, 65534)
    settings = load_settings(settings_env(data_dir))
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        pass
    assert _mode(data_dir) == 0o777
    assert _modes(data_dir)
    assert set(_modes(data_dir).values()) == {0o600}
