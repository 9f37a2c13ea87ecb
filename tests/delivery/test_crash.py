"""A delivery worker process killed with SIGKILL while the receiver holds requests open: after a
restart every event is delivered (same ``webhook-id``), and nothing is left claimed or pending.

The real thing end to end: ``python -m service worker`` as a subprocess on a SQLite file this
test also opens, a receiver served on loopback by this test's event loop, signatures checked
with the ``standardwebhooks`` package. Delivery is at least once, so duplicates are allowed
(each request held at the kill is sent again); they are counted and printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

from standardwebhooks.webhooks import Webhook

from service.app import open_store
from service.core.clock import system_clock
from service.core.endpoints import Endpoint
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.outbox import record_event
from service.settings import PROJECT_ROOT, load_settings
from service.store.base import Account, Store
from tests.backends import reader
from tests.conftest import settings_env
from tests.delivery.receiver import Receiver
from tests.factories import make_endpoint
from tests.servers import serve_app

N_EVENTS = 20
#: requests held open (``"hang"``) at the start of each path; together fewer than the
#: sender's 8 connections per host, so the other deliveries can still go through meanwhile
HELD = {"/a": 3, "/b": 2}


def _append(path: Path) -> IO[bytes]:
    return path.open("ab")


def _read(path: Path) -> str:
    return path.read_text()


def _endpoint(account_id: str, url: str, now: int) -> Endpoint:
    return make_endpoint(account_id, url, now=now)


@asynccontextmanager
async def _worker(env: dict[str, str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m service worker`` in its own process group; killed on the way out if the
    test has not stopped it already."""
    with _append(log) as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "worker",
            env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)


async def _until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    proc: asyncio.subprocess.Process,
    log: Path,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if proc.returncode is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}): {_read(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _rows(store: Store, sql: str, *args: object) -> list[tuple[Any, ...]]:
    async with reader(store).execute(sql, args) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def test_a_worker_killed_mid_send_delivers_everything_after_restart(
    tmp_path: Path,
) -> None:
    overrides = settings_env(
        tmp_path / "data",
        TASKHOOK__DELIVERY__LEASE_SECONDS="1",
        TASKHOOK__WORKERS__IDLE_POLL_MS="50",
        # Longer than the test: a held request must still be open when the worker is killed.
        TASKHOOK__DELIVERY__REQUEST_TIMEOUT_SECONDS="60",
    )
    settings = load_settings(overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")} | overrides
    log = tmp_path / "worker.log"
    store = open_store(settings)
    await store.open()
    receiver = Receiver(script={path: ["hang"] * held + [200] for path, held in HELD.items()})
    try:
        async with serve_app(receiver.app()) as base:
            try:
                await _scenario(store, receiver, base, env, log)
            finally:
                receiver.release.set()  # the server waits for its handlers on the way out
    finally:
        await store.close()


async def _scenario(
    store: Store, receiver: Receiver, base: str, env: dict[str, str], log: Path
) -> None:
    now = system_clock()
    account = Account(new_id("acct", now), "subscriber", now)
    endpoints = {path: _endpoint(account.id, base + path, now) for path in HELD}
    events = []
    async with store.transaction() as tx:
        await tx.insert_account(account)
        for endpoint in endpoints.values():
            await tx.insert_endpoint(endpoint)
    for n in range(N_EVENTS):
        event = Event(
            new_id("evt", now), account.id, "task.succeeded", None,
            envelope("task.succeeded", {"n": n}, now), now,
        )  # fmt: skip
        async with store.transaction() as tx:
            await record_event(tx, event, now)
        events.append(event)
    total = N_EVENTS * len(endpoints)
    path_of = {endpoint.id: path for path, endpoint in endpoints.items()}

    async def states() -> dict[tuple[str, str], tuple[Any, ...]]:
        rows = await _rows(
            store,
            "SELECT event_id, endpoint_id, status, lease_until, claim_token, attempts"
            " FROM deliveries",
        )
        return {(r[0], path_of[r[1]]): r[2:] for r in rows}

    async def count(status: str) -> int:
        [(n,)] = await _rows(store, "SELECT COUNT(*) FROM deliveries WHERE status = ?", status)
        return int(n)

    assert await count("pending") == total

    # 1. The first worker: the held requests arrive, everything else is delivered; then kill.
    held_total = sum(HELD.values())

    async def held_and_rest_delivered() -> bool:
        arrived = all(len(receiver.at(path)) >= n for path, n in HELD.items())
        return arrived and await count("delivered") == total - held_total

    async with _worker(env, log) as first:
        await _until(held_and_rest_delivered, "the held requests", first, log, timeout_s=15)
        os.killpg(first.pid, signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 5) == -signal.SIGKILL

    held = {
        (r.headers["webhook-id"], path) for path in HELD for r in receiver.at(path)[: HELD[path]]
    }
    assert len(held) == held_total
    at_kill = await states()
    for pair in held:
        status, lease_until, claim_token, attempts = at_kill[pair]
        assert status == "pending", pair  # the held ones: claimed, never finished
        assert lease_until is not None
        assert claim_token is not None
        assert attempts == 0
    assert {pair for pair, row in at_kill.items() if row[0] != "delivered"} == held

    # 2. Let the held requests go (their client is dead), answer 200 from now on, restart.
    receiver.release.set()
    receiver.script.clear()
    sent_before_restart = len(receiver.received)
    async with _worker(env, log) as second:

        async def nothing_pending() -> bool:
            return await count("delivered") == total

        await _until(nothing_pending, "every delivery to be delivered", second, log, timeout_s=15)
        os.killpg(second.pid, signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 5) == 0, _read(log)

    # 3. Every (event, endpoint) pair arrived, under the event's id, signed with the endpoint's
    # secret; the held ones arrived again after the restart.
    by_id = {event.id: event for event in events}
    seen: Counter[tuple[str, str]] = Counter()
    for got in receiver.received:
        event = by_id[got.headers["webhook-id"]]
        assert got.body == event.payload.encode()
        verified = Webhook(endpoints[got.path].secret).verify(got.body, got.headers)
        assert verified == json.loads(event.payload)
        seen[(event.id, got.path)] += 1
    assert set(seen) == {(event.id, path) for event in events for path in endpoints}
    resent = {(r.headers["webhook-id"], r.path) for r in receiver.received[sent_before_restart:]}
    assert held <= resent
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates >= held_total
    print(
        f"\ncrash: {len(receiver.received)} requests for {total} deliveries,"
        f" {duplicates} duplicates ({held_total} held at the kill)"
    )

    # 4. Nothing left claimed; the killed attempt left no attempt row (it never finished).
    after = await states()
    assert {row[:3] for row in after.values()} == {("delivered", None, None)}
    assert {row[3] for row in after.values()} == {1}
    [(attempts,)] = await _rows(store, "SELECT COUNT(*) FROM attempts WHERE status_code = 200")
    assert attempts == total
    assert "Traceback" not in _read(log)
