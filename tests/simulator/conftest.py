"""Fixtures for the simulator: it runs on a real loopback port, mounted under a prefix as taskhook
mounts it, and calls back a real receiver app that records every request.

Tests using these fixtures share one server per module, so they run in the module's event loop:
each such test module sets ``pytestmark = MODULE_LOOP``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from service.core.signing import encode_secret
from service.delivery.ssrf import TargetPolicy
from service.providers.simulator import Simulator, SimulatorConfig, create_simulator_app
from tests.servers import serve_app

WEBHOOK_SECRET = encode_secret(bytes(range(32)))
LATENCY_MS = 100
#: the receivers listen on loopback, which the callback guard refuses unless allowed (as dev does)
LOOPBACK = TargetPolicy.from_settings(["127.0.0.0/8"])
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Received:
    """One callback as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json["data"]
        return data


@dataclass
class Receiver:
    """A callback target; ``statuses`` are answered in turn (200 once exhausted)."""

    url: str = ""
    calls: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.calls.append(Received(dict(request.headers), body, time.monotonic()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)

    async def wait_for(self, count: int, timeout_s: float = 3.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.calls) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} callbacks, got {len(self.calls)}")
            await asyncio.sleep(0.01)
        return self.calls


class Host:
    """One loopback server per test module; each test adds its receiver and simulators to it.

    Starting and stopping uvicorn costs ~0.2 s, so tests share the server and stay fast.
    """

    def __init__(self) -> None:
        self.app = Starlette()
        self.base = ""
        self._count = 0

    def add(self, route: BaseRoute) -> None:
        self.app.router.routes.append(route)

    def unique(self, stem: str) -> str:
        self._count += 1
        return f"/{stem}{self._count}"


@dataclass(frozen=True)
class Sim:
    """A running simulator and a client pointed at it."""

    public_url: str
    app: Starlette
    http: httpx.AsyncClient

    @property
    def runtime(self) -> Simulator:
        sim: Simulator = self.app.state.simulator
        return sim

    def image_url(self, task_id: str, index: int = 0, ext: str = "png") -> str:
        """Where image ``index`` of ``task_id`` is served: under the job's image id."""
        job = self.runtime.get(task_id)
        assert job is not None
        return f"{self.public_url}/images/{job.image_id}/{index}.{ext}"

    async def create(
        self, prompt: str, callback: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """createTask; returns the response JSON (asserting a 200)."""
        body: dict[str, Any] = {"model": "nano-banana", "input": {"prompt": prompt, **fields}}
        if callback is not None:
            body["callBackUrl"] = callback
        response = await self.http.post("/api/v1/jobs/createTask", json=body)
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    async def task_id(self, prompt: str, callback: str | None = None, **fields: Any) -> str:
        task_id: str = (await self.create(prompt, callback, **fields))["data"]["taskId"]
        return task_id

    async def info(self, task_id: str) -> dict[str, Any]:
        response = await self.http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def until_done(self, task_id: str, timeout_s: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            data = await self.info(task_id)
            if data["state"] in ("success", "fail"):
                return data
            assert time.monotonic() < deadline, "task never finished"
            await asyncio.sleep(0.02)


StartSim = Callable[..., Awaitable[Sim]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host() -> AsyncIterator[Host]:
    shared = Host()
    async with serve_app(shared.app, lifespan="off") as base:
        shared.base = base
        yield shared


@pytest_asyncio.fixture(loop_scope="module")
async def receiver(host: Host) -> Receiver:
    path = host.unique("hook")
    rec = Receiver(url=host.base + path)
    host.add(Route(path, rec.endpoint, methods=["POST"]))
    return rec


@pytest_asyncio.fixture(loop_scope="module")
async def start_sim(host: Host) -> AsyncIterator[StartSim]:
    """Start simulators with config overrides, each mounted under its own prefix (as taskhook
    mounts it under ``/simulator``); all are closed (``aclose``) after the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Sim:
            prefix = host.unique("simulator")
            settings: dict[str, Any] = {
                "latency_ms": LATENCY_MS,
                "callback_policy": LOOPBACK,
                **overrides,
            }
            config = SimulatorConfig(
                public_url=host.base + prefix, webhook_secret=WEBHOOK_SECRET, **settings
            )
            app = create_simulator_app(config)
            host.add(Mount(prefix, app))
            stack.push_async_callback(app.state.simulator.aclose)
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=config.public_url, trust_env=False)
            )
            return Sim(config.public_url, app, http)

        yield start


@pytest_asyncio.fixture(loop_scope="module")
async def sim(start_sim: StartSim) -> Sim:
    return await start_sim()
