"""An app with its own limits for one test: real settings from ``config/dev.toml`` plus the
environment overrides the test names, a real SQLite file, served over ``httpx.ASGITransport``
or uvicorn on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.store.base import Store
from service.usecases import create_account, create_api_key
from tests.conftest import Caller, settings_env
from tests.servers import bind_loopback, serve_app

RATELIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def limits_env(rate: int, burst: int, **extra: str) -> dict[str, str]:
    return {
        "TASKHOOK__API__RATE_LIMIT": str(rate),
        "TASKHOOK__API__RATE_LIMIT_BURST": str(burst),
        **extra,
    }


@dataclass
class Running:
    app: Starlette
    http: httpx.AsyncClient

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    async def caller(self, credits: int = 1000, name: str = "acme") -> Caller:
        account = await create_account(self.store, system_clock, name, credits)
        return await self.another_key(Caller(account.id, ""))

    async def another_key(self, of: Caller) -> Caller:
        _, raw = await create_api_key(self.store, system_clock, of.account_id)
        return Caller(of.account_id, raw)


@contextlib.asynccontextmanager
async def running(
    data_dir: Path, env: dict[str, str], *, over_uvicorn: bool = False, workers: bool = False
) -> AsyncIterator[Running]:
    """The app for ``env``; ``over_uvicorn`` serves it on a loopback port (``workers``: with
    its submitter and reconciler, for tasks that must really finish)."""
    sock = bind_loopback() if over_uvicorn else None
    port = {"PORT": str(sock.getsockname()[1])} if sock is not None else {}
    settings = load_settings(settings_env(data_dir, **port, **env))
    app = create_app(settings, run_workers=workers)
    if sock is not None:
        async with (
            serve_app(app, sock=sock, lifespan="on") as base,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            yield Running(app, http)
        return
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Running(app, http)
