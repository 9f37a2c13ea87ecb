"""On PostgreSQL, a ``web`` app and a separate worker (its own store, as another process or
host): the web's commit wakes the worker through ``LISTEN/NOTIFY`` though its idle poll is a
minute away; with no listening connection at all, the idle poll still picks the work up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest

from service.app import build_background, fleet_listener, open_store, provider_client
from service.core.clock import system_clock
from service.settings import Settings
from service.store.postgres.notify import PgWakeListener
from service.wakeup import wake_loops
from tests.conftest import Caller
from tests.delivery.receiver import Receiver
from tests.servers import bind_loopback, serve_app

pytestmark = pytest.mark.postgres_only

#: a server nobody runs: the listener of the second case never connects
NOWHERE = "postgresql://postgres@127.0.0.1:9/none"


async def _ping_arrives(
    settings: Settings,
    client: httpx.AsyncClient,
    caller: Caller,
    *,
    idle_poll_ms: int,
    listen_to: str | None,
) -> float:
    """Seconds from web's commit of a ping to the worker's delivery of it."""
    receiver = Receiver()
    worker_settings = replace(
        settings, workers=replace(settings.workers, idle_poll_ms=idle_poll_ms)
    )
    store = open_store(worker_settings)
    await store.open()
    provider = provider_client(worker_settings)
    background = build_background(worker_settings, store, provider, system_clock)
    listener = (
        fleet_listener(worker_settings, background.waker)
        if listen_to is None
        else PgWakeListener(listen_to, wake_loops(background.waker))
    )
    assert listener is not None
    listener.start()
    try:
        async with serve_app(receiver.app(), sock=bind_loopback()) as base:
            created = await client.post(
                "/v1/endpoints", headers=caller.headers, json={"url": f"{base}/hook"}
            )
            assert created.status_code == 201, created.text
            if listen_to is None:
                await asyncio.wait_for(listener.listening.wait(), 5)
            background.workers.start()
            await asyncio.sleep(0.2)  # the loops have looked once, found nothing, and sleep
            assert receiver.received == []
            started = time.monotonic()
            ping = await client.post(
                f"/v1/endpoints/{created.json()['id']}/test", headers=caller.headers
            )
            assert ping.status_code == 202
            while not receiver.received:
                assert time.monotonic() - started < 5, "not delivered"
                await asyncio.sleep(0.005)
            assert [r.path for r in receiver.received] == ["/hook"]
            return time.monotonic() - started
    finally:
        await listener.close()
        await background.close()
        await provider.aclose()
        await store.close()


async def test_web_commits_wake_a_worker_elsewhere_through_notify(
    settings: Settings, client: httpx.AsyncClient, caller: Caller
) -> None:
    took = await _ping_arrives(settings, client, caller, idle_poll_ms=60_000, listen_to=None)
    assert took < 1  # the poll is a minute away: the notification woke it


async def test_without_a_listener_the_idle_poll_picks_the_work_up(
    settings: Settings, client: httpx.AsyncClient, caller: Caller
) -> None:
    took = await _ping_arrives(settings, client, caller, idle_poll_ms=400, listen_to=NOWHERE)
    assert took < 2
