"""The replay bench: the real app (its routes through ``httpx.ASGITransport``) on a clock the
test moves, the real ``DeliveryWorker`` on the app's own store, and a real receiver on loopback,
so what a replay queues is sent over HTTP and checked with ``standardwebhooks``.

Endpoints are registered through the API (loopback targets are allowed by the dev config);
events are written through the outbox (``record_event``), as the ledger writes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.delivery.sender import Sender
from service.delivery.ssrf import TargetPolicy
from service.delivery.worker import DeliveryWorker
from service.outbox import record_event
from service.settings import Settings, load_settings
from service.store.base import Store
from service.usecases import create_account, create_api_key
from service.web.context import Services
from tests.backends import reader
from tests.conftest import EXTERNAL_PROVIDERS, Caller, settings_env
from tests.delivery.receiver import Receiver
from tests.servers import serve_app

#: Real time, moved forward by the tests: ``standardwebhooks`` checks timestamps against it.
T0 = system_clock()
SECOND = 1000


@dataclass
class Bench:
    app: Starlette
    client: httpx.AsyncClient
    store: Store
    worker: DeliveryWorker
    receiver: Receiver
    base: str
    now: list[int]
    settings: Settings

    def realtime(self) -> None:
        """Move the clock up to the real time: for a test whose signatures or tokens are
        checked against the wall clock (``T0`` is taken when the module is imported, which in
        a long run is many minutes before the test)."""
        self.at(max(self.now[0], system_clock()))

    def at(self, ms: int) -> None:
        """Move the clock to ``ms`` (forward only: ids are ordered by it)."""
        assert ms >= self.now[0]
        self.now[0] = ms

    def tick(self, ms: int = 1) -> int:
        self.now[0] += ms
        return self.now[0]

    async def caller(self, name: str = "acme") -> Caller:
        clock = lambda: self.now[0]  # noqa: E731
        account = await create_account(self.store, clock, name, 1000)
        _, raw = await create_api_key(self.store, clock, account.id)
        return Caller(account.id, raw)

    async def endpoint(self, who: Caller, path: str = "/hook", **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/endpoints", json={"url": self.base + path, **body}, headers=who.headers
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def event(
        self, who: Caller, event_type: str = "task.succeeded", task_id: str | None = None
    ) -> Event:
        """An event fanned out to the account's subscribed endpoints, at the current time."""
        now = self.tick()
        data: dict[str, Any] = {"n": now}
        event = Event(
            new_id("evt", now), who.account_id, event_type, task_id,
            envelope(event_type, data, now), now,
        )  # fmt: skip
        async with self.store.transaction() as tx:
            await record_event(tx, event, now)
        return event

    async def failed_event(self, who: Caller, endpoint_id: str, **kw: Any) -> Event:
        """An event whose delivery to ``endpoint_id`` was given up on (its others stay due)."""
        event = await self.event(who, **kw)
        async with self.store.transaction() as tx:
            await tx.fail_pending_deliveries(endpoint_id, "gave up", self.now[0])
        return event

    async def round(self, advance_s: float = 0) -> int:
        self.now[0] += int(advance_s * SECOND)
        return await self.worker.deliver_due()

    async def get(self, who: Caller, path: str, **params: str) -> dict[str, Any]:
        response = await self.client.get(path, params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def post(self, who: Caller, path: str, body: Any = None) -> httpx.Response:
        if body is None:
            return await self.client.post(path, headers=who.headers)
        return await self.client.post(path, json=body, headers=who.headers)

    async def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        async with reader(self.store).execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    settings = load_settings(settings_env(tmp_path, **EXTERNAL_PROVIDERS))
    now = [T0]
    app = create_app(settings, clock=lambda: now[0], run_workers=False)
    receiver = Receiver()
    async with app.router.lifespan_context(app), serve_app(receiver.app()) as base:
        services: Services = app.state.services
        sender = Sender(
            settings.delivery, TargetPolicy.from_settings(settings.delivery.allowed_networks)
        )
        worker = DeliveryWorker(
            services.store, sender, settings.delivery, lambda: now[0], rand=lambda: 0.5
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Bench(app, client, services.store, worker, receiver, base, now, settings)
        receiver.release.set()
        await sender.close()


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
