"""Shared fixtures: real settings from config/dev.toml, a real database — a SQLite file in
``tmp_path``, or a fresh PostgreSQL schema (``tests.backends``) — the real app behind
``httpx.ASGITransport`` with its lifespan running.

The suites in ``BOTH_BACKENDS`` run every test twice, ``[sqlite]`` and ``[postgres]``, unless
it is marked ``sqlite_only`` (it looks at SQLite's own machinery: the file, its WAL, group
commit) or ``postgres_only``. The PostgreSQL lane skips, loudly, when no server is reachable —
and fails instead when ``TASKHOOK_REQUIRE_POSTGRES=1`` (CI)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.logs import configure_logging
from service.settings import PROJECT_ROOT, Settings, load_settings
from service.store.base import Store
from service.usecases import create_account, create_api_key
from service.web.context import Services
from tests import backends
from tests.image_server import ImageServer, shared

if TYPE_CHECKING:  # the harness module imports this one
    from tests.upstream.test_callback_rejections import Harness

SECRET = "test-secret-key-0123456789abcdefghijklmnop"


def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service under test, on the running test's backend."""
    database = {"TASKHOOK_DATABASE_URL": backends.CURRENT.url} if backends.CURRENT.url else {}
    return {
        "TASKHOOK_CONFIG": str(PROJECT_ROOT / "config" / "dev.toml"),
        "TASKHOOK_DATA_DIR": str(data_dir),
        "TASKHOOK_SECRET_KEY": SECRET,
        "TASKHOOK_LOG_LEVEL": "warning",
        **database,
        **extra,
    }


BOTH_BACKENDS = (
    "store", "api", "upstream", "delivery", "e2e", "endpoints", "replay", "ops", "ratelimit",
    "moderation", "assets",
)  # fmt: skip
_skipped_postgres: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: SQLite's own machinery; one lane only")
    config.addinivalue_line("markers", "postgres_only: PostgreSQL's own machinery")


def _suite(node: pytest.Item | pytest.Metafunc) -> str:
    path = Path(str(node.path if isinstance(node, pytest.Item) else node.definition.path))
    parts = path.relative_to(PROJECT_ROOT / "tests").parts
    return parts[0] if len(parts) > 1 else ""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marks = {m.name for m in metafunc.definition.iter_markers()}
    if "postgres_only" in marks:
        lanes: tuple[str, ...] = ("postgres",)
    elif "sqlite_only" in marks or _suite(metafunc) not in BOTH_BACKENDS:
        return
    else:
        lanes = backends.BACKENDS
    metafunc.fixturenames.append("backend")
    metafunc.parametrize("backend", lanes, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The lane: ``sqlite``, or ``postgres`` on a fresh schema of the session's database."""
    lane: str = request.param
    if lane == "postgres":
        why = backends.SESSION.unreachable()
        if why is not None:
            if backends.REQUIRED:
                pytest.fail(f"PostgreSQL is required (TASKHOOK_REQUIRE_POSTGRES=1): {why}")
            _skipped_postgres.append(why)
            pytest.skip(f"PostgreSQL unreachable at {backends.SERVER_URL}: {why}")
        backends.CURRENT.url = backends.SESSION.new_schema()
    try:
        yield lane
    finally:
        backends.CURRENT.url = ""


@pytest.fixture(autouse=True)
def _database_lane(request: pytest.FixtureRequest) -> None:
    """The lane is chosen before any other fixture builds settings or a store from it."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "backend" in callspec.params:
        request.getfixturevalue("backend")


def pytest_sessionfinish(session: pytest.Session) -> None:
    backends.SESSION.drop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped_postgres:
        terminalreporter.write_sep(
            "!", f"POSTGRESQL LANE SKIPPED: {len(_skipped_postgres)} tests did not run", red=True
        )
        terminalreporter.write_line(
            f"  no server at {backends.SERVER_URL} ({_skipped_postgres[0]}); set"
            " TASKHOOK_TEST_DATABASE_URL or start PostgreSQL. CI requires this lane."
        )


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
def store(app: Starlette) -> Store:
    services: Services = app.state.services
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
def make_caller(store: Store) -> MakeCaller:
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
def h(app: Starlette, client: httpx.AsyncClient, store: Store) -> Harness:
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


@pytest.fixture(scope="session")
def image_server() -> ImageServer:
    """A provider's image host on loopback (``tests.image_server``), for the whole session."""
    return shared()
