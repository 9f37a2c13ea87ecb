"""The fault bench: the service talks to PostgreSQL through a ``CutProxy`` the test can cut,
black-hole and restore, so the database goes away without touching the shared server.

``settings`` (and so the shared ``app``, ``store``, ``client`` and ``caller`` fixtures) points
the service at the proxy; the test's own reads (``tests.backends.rows``) still go straight to
the server, so they can check what was committed while the service cannot see it. ``client``
turns an exception that escapes the app into the 500 a real server would send, not a raise.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from service.settings import Settings, load_settings
from tests import backends
from tests.conftest import EXTERNAL_PROVIDERS, settings_env
from tests.cut_proxy import CutProxy, cut_proxy
from tools.soak.postgres import OwnedServer

#: what bounds a request while the database hangs: the pool's timeouts, with room to spare
HANG_BOUND_S = 15.0


@pytest.fixture
async def proxy() -> AsyncIterator[CutProxy]:
    async with cut_proxy(backends.CURRENT.url) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, proxy: CutProxy) -> Settings:
    url = proxy.proxied_url(backends.CURRENT.url)
    return load_settings(settings_env(tmp_path, TASKHOOK_DATABASE_URL=url, **EXTERNAL_PROVIDERS))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=HANG_BOUND_S
    ) as c:
        yield c


@pytest.fixture(scope="session")
def throwaway_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnedServer]:
    """A PostgreSQL server of this session's own (the soak's ``OwnedServer``), running, that
    tests may stop and start; the shared server is never touched."""
    # Under /tmp, not pytest's 0700 tree: the server runs as postgres and must reach its dir.
    directory = Path(tempfile.mkdtemp(prefix="th_pgfault_"))
    server = OwnedServer(directory, keep_log=tmp_path_factory.mktemp("pg") / "server.log")
    try:
        backends.run_sync(server.create())
    except RuntimeError as exc:  # no server binaries here
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"no throwaway PostgreSQL: {exc}")
    try:
        yield server
    finally:
        backends.run_sync(server.remove())
