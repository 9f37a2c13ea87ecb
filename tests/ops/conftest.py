"""The ops bench: the real app (``httpx.ASGITransport``) on a clock the test moves, the real
``DeliveryWorker`` counting into the app's own metrics registry, and a real receiver on loopback.

The clock starts at real time: callbacks are signed with the wall clock and checked against the
app's, within five minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from service.app import create_app
from service.core.clock import system_clock
from service.delivery.sender import Sender
from service.delivery.ssrf import TargetPolicy
from service.delivery.worker import DeliveryWorker
from service.metrics import Metrics
from service.settings import Settings
from service.store.sqlite import SqliteStore
from service.web.metrics import metrics
from tests.conftest import Caller
from tests.delivery.receiver import Receiver
from tests.servers import serve_app

DAY_S = 86_400


@dataclass
class MovableClock:
    now: int

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += round(seconds * 1000)
        return self.now


def with_metrics_route(app: Starlette) -> None:
    """``/metrics`` as the route table will have it, added here while the table is another
    change's to edit (a no-op once it is there)."""
    if not any(getattr(r, "path", None) == "/metrics" for r in app.router.routes):
        app.router.routes.insert(0, Route("/metrics", metrics, methods=["GET"]))


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(system_clock())


@pytest.fixture
async def app(settings: Settings, clock: MovableClock) -> AsyncIterator[Starlette]:
    """The shared ``app`` fixture on a movable clock (``store``, ``client`` and ``caller`` use
    this one)."""
    application = create_app(settings, clock=clock, run_workers=False)
    with_metrics_route(application)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Subscriber:
    """A receiver on loopback, and the delivery worker that sends to it."""

    receiver: Receiver
    base: str
    worker: DeliveryWorker
    client: httpx.AsyncClient

    async def endpoint(self, who: Caller, path: str) -> str:
        response = await self.client.post(
            "/v1/endpoints", json={"url": self.base + path}, headers=who.headers
        )
        assert response.status_code == 201, response.text
        endpoint_id: str = response.json()["id"]
        return endpoint_id


@pytest.fixture
async def subscriber(
    app: Starlette,
    settings: Settings,
    store: SqliteStore,
    client: httpx.AsyncClient,
    clock: MovableClock,
) -> AsyncIterator[Subscriber]:
    receiver = Receiver()
    sender = Sender(
        settings.delivery, TargetPolicy.from_settings(settings.delivery.allowed_networks)
    )
    registry = cast(Metrics, app.state.metrics)
    worker = DeliveryWorker(
        store, sender, settings.delivery, clock, rand=lambda: 0.5, metrics=registry
    )
    async with serve_app(receiver.app()) as base:
        yield Subscriber(receiver, base, worker, client)
        receiver.release.set()
    await sender.close()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample in an exposition text, keyed by ``(name, sorted labels)``."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: Any) -> float:
    return samples[(name, tuple(sorted((k, str(v)) for k, v in labels.items())))]
