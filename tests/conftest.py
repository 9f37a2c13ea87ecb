"""Shared fixtures: real settings from config/dev.toml, a real SQLite file in ``tmp_path``, the
real app behind ``httpx.ASGITransport`` with its lifespan running."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.logs import configure_logging
from service.settings import PROJECT_ROOT, Settings, load_settings
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from service.web.context import Services

if TYPE_CHECKING:  # the harness module imports this one
    from tests.upstream.test_callback_rejections import Harness

SECRET = "test-secret-key-0123456789abcdefghijklmnop"


def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "TASKHOOK_CONFIG": str(PROJECT_ROOT / "config" / "dev.toml"),
        "TASKHOOK_DATA_DIR": str(data_dir),
        "TASKHOOK_SECRET_KEY": SECRET,
        "TASKHOOK_LOG_LEVEL": "warning",
        **extra,
    }


#: The external providers switched on (nothing listens there: API tests run no workers).
EXTERNAL_PROVIDERS = {
    "TASKHOOK_KIE_BASE_URL": "http://127.0.0.1:9",
    "TASKHOOK_BANANA2_BASE_URL": "http://127.0.0.1:9",
    "TASKHOOK_NANOBANANAPRO_BASE_URL": "http://127.0.0.1:9",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(settings_env(tmp_path, **EXTERNAL_PROVIDERS))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    # No background workers here: API tests look at the rows a request wrote, and nothing
    # upstream is listening. tests/upstream runs them against a real server.
    application = create_app(settings, run_workers=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def store(app: Starlette) -> SqliteStore:
    services: Services = app.state.services
    assert isinstance(services.store, SqliteStore)
    return services.store


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass(frozen=True)
class Caller:
    account_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


MakeCaller = Callable[..., Awaitable[Caller]]


@pytest.fixture
def make_caller(store: SqliteStore) -> MakeCaller:
    """Create an account with ``credits`` and an API key for it, through the real use cases."""

    async def make(credits: int = 1000, name: str = "acme") -> Caller:
        account = await create_account(store, system_clock, name, credits)
        _, raw = await create_api_key(store, system_clock, account.id)
        return Caller(account.id, raw)

    return make


@pytest.fixture
async def caller(make_caller: MakeCaller) -> Caller:
    return await make_caller()


@pytest.fixture
def h(app: Starlette, client: httpx.AsyncClient, store: SqliteStore) -> Harness:
    """The callback harness (tasks to call back, signed callbacks) over this test's app."""
    from tests.upstream.test_callback_rejections import Harness

    return Harness(app, client, store)


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Production logging (JSON at info) into capsys's stderr, reset afterwards."""
    # Depends on capsys so that the handlers bind the captured stderr.
    configure_logging("json", "info")
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
