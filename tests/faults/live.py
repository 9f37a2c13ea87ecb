"""The live fault bench: the app served on loopback with its workers and the built-in
simulator, talking to PostgreSQL through a ``CutProxy``, a receiver subscribed to its events,
and a record of every answer the app sent (``Answers``) to check against the database after."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.store.postgres.connection import translate
from service.usecases import create_account, create_api_key
from tests import backends
from tests.conftest import settings_env
from tests.delivery.receiver import Receiver
from tests.faults.conftest import HANG_BOUND_S
from tests.servers import bind_loopback, serve_app

FAST = {
    "TASKHOOK__SIMULATOR__LATENCY_MS": "150",
    "TASKHOOK__UPSTREAM__CALLBACK_DEADLINE_SECONDS": "1",
    "TASKHOOK__UPSTREAM__POLL_INTERVAL_SECONDS": "1",
    "TASKHOOK__UPSTREAM__GIVE_UP_SECONDS": "60",
    "TASKHOOK__UPSTREAM__SUBMIT_BACKOFF_BASE_MS": "100",
    "TASKHOOK__UPSTREAM__SUBMIT_BACKOFF_MAX_MS": "400",
    "TASKHOOK__UPSTREAM__LEASE_SECONDS": "2",
    "TASKHOOK__DELIVERY__LEASE_SECONDS": "2",
    "TASKHOOK__WORKERS__IDLE_POLL_MS": "50",
}
TERMINAL = ("succeeded", "failed")


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    retry_after: str | None
    body: bytes
    took_s: float


@dataclass
class Answers:
    """An ASGI wrapper that keeps every HTTP answer the app gives (the simulator's callbacks
    included: they arrive over loopback like any other request)."""

    app: ASGIApp
    kept: list[Answer] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status, headers, body = 0, {}, bytearray()

        async def keep(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            self.kept.append(
                Answer(scope["method"], scope["path"], status, headers.get("retry-after"),
                       bytes(body), time.monotonic() - started)
            )  # fmt: skip

    def wrong(self) -> list[Answer]:
        """Answers that break the rule: a 5xx other than 503 with Retry-After, or a hang."""
        return [
            a for a in self.kept
            if (a.status >= 500 and (a.status != 503 or not a.retry_after))
            or a.took_s > HANG_BOUND_S
        ]  # fmt: skip

    def acked_callbacks(self) -> list[str]:
        """The ids of the provider callbacks answered 2xx: each must be a committed row."""
        return [
            json.loads(a.body)["id"] for a in self.kept
            if a.path.startswith("/callbacks/") and 200 <= a.status < 300
        ]  # fmt: skip


@dataclass
class Live:
    http: httpx.AsyncClient
    answers: Answers
    receiver: Receiver
    account_id: str
    #: the database itself, not through the proxy (``None``: the test's own schema)
    direct_url: str | None = None

    async def db(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Straight to the server, not through the proxy: what is committed."""
        if self.direct_url is None:
            return await backends.rows(Path("unused.db"), sql, *args)
        statement, _ = translate(sql)
        conn = await asyncpg.connect(self.direct_url, timeout=5)
        try:
            return [tuple(r) for r in await conn.fetch(statement, *args)]
        finally:
            await conn.close()

    async def settle(self, timeout_s: float) -> list[tuple[Any, ...]]:
        """Wait until every task of the account is terminal and its event delivered."""
        deadline = time.monotonic() + timeout_s
        while True:
            open_tasks = await self.db(
                "SELECT id, status FROM tasks WHERE account_id = ? AND status NOT IN (?, ?)",
                self.account_id, *TERMINAL,
            )  # fmt: skip
            pending = await self.db("SELECT id, status FROM deliveries WHERE status = 'pending'")
            if not open_tasks and not pending:
                return await self.db(
                    "SELECT id, status FROM tasks WHERE account_id = ?", self.account_id
                )
            assert time.monotonic() < deadline, f"not settled: {open_tasks[:5]} {pending[:5]}"
            await asyncio.sleep(0.2)

    def delivered_tasks(self) -> set[str]:
        """The task ids of the task.succeeded / task.failed events the receiver got."""
        return {json.loads(r.body)["data"]["id"] for r in self.receiver.received}


@asynccontextmanager
async def live_app(data_dir: Path, database_url: str) -> AsyncIterator[Live]:
    """The service on ``database_url`` (the proxy's, or a throwaway server's), served."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    env = settings_env(data_dir, PORT=str(port), TASKHOOK_DATABASE_URL=database_url, **FAST)
    app = create_app(load_settings(env))
    answers = Answers(app)
    receiver = Receiver()
    async with (
        serve_app(receiver.app()) as hooks,
        serve_app(answers, sock=sock, lifespan="on") as base,
    ):
        store = app.state.services.store
        account = await create_account(store, system_clock, "faults", 100_000)
        _, key = await create_api_key(store, system_clock, account.id)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=base, headers=headers, timeout=HANG_BOUND_S + 5
        ) as http:
            response = await http.post(
                "/v1/endpoints",
                json={"url": hooks + "/hooks", "event_types": ["task.succeeded", "task.failed"]},
            )
            assert response.status_code == 201, response.text
            yield Live(http, answers, receiver, account.id)
        receiver.release.set()


@dataclass
class Load:
    """Clients submitting tasks (each with its own idempotency key) and reading them back,
    until stopped; ``acked`` holds the ids of the tasks answered 202."""

    live: Live
    acked: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            body = {"prompt": f"a lighthouse in fog {n}-{i}", "model": "nano-banana"}
            response = await self.live.http.post(
                "/v1/tasks", json=body, headers={"Idempotency-Key": f"load-{n}-{i}"}
            )
            self.statuses.append(response.status_code)
            if response.status_code == 202:
                task_id = response.json()["id"]
                self.acked.append(task_id)
                read = await self.live.http.get(f"/v1/tasks/{task_id}")
                self.statuses.append(read.status_code)
            else:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)

    @asynccontextmanager
    async def running(self, clients: int) -> AsyncIterator[Load]:
        tasks = [asyncio.create_task(self.client(n)) for n in range(clients)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)


async def check_nothing_lost(live: Live, load: Load) -> None:
    """After a fault: no wrong answer, every acknowledged task and callback committed, every
    task succeeded and its event delivered."""
    assert live.answers.wrong() == []
    assert set(load.statuses) <= {200, 202, 503}, sorted(set(load.statuses))
    assert 503 in load.statuses, "the cut was not felt"
    assert load.acked, "nothing was acknowledged"
    settled = dict(await live.settle(timeout_s=45))
    assert set(load.acked) <= set(settled)
    assert all(status == "succeeded" for status in settled.values())
    callbacks = {row[0] for row in await live.db("SELECT id FROM callbacks")}
    acked_callbacks = live.answers.acked_callbacks()
    assert acked_callbacks
    assert set(acked_callbacks) <= callbacks
    assert set(settled) <= live.delivered_tasks()
