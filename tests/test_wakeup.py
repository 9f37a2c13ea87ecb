"""Waking the worker process from web: real Unix datagram sockets, and a web app and a worker
on one database file, the worker's idle poll set far beyond the test's patience."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from pathlib import Path

import httpx

from service.app import build_background, open_store, provider_client
from service.core.clock import system_clock
from service.settings import Settings
from service.wakeup import WakeListener, WakeSender, wake_address
from service.workers import DELIVERY, SUBMITTER, Waker
from tests.conftest import Caller
from tests.delivery.receiver import Receiver
from tests.servers import bind_loopback, serve_app


def _address() -> str:
    return wake_address(Path(f"/nonexistent/{secrets.token_hex(8)}.db"))


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


async def test_each_datagram_wakes_the_loops_it_names() -> None:
    waker, address = Waker(), _address()
    listener = WakeListener(address, waker)
    assert listener.start()
    sender = WakeSender(address)
    try:
        sender.send(DELIVERY)
        await _settle()
        assert waker.delivery.is_set()
        assert not waker.submitter.is_set()
        waker.delivery.clear()
        sender.send(b"?")  # not ours: ignored
        await _settle()
        assert not waker.delivery.is_set()
        assert not waker.submitter.is_set()
        sender.send(SUBMITTER)
        await _settle()
        assert waker.delivery.is_set()
        assert waker.submitter.is_set()
    finally:
        sender.close()
        listener.close()


async def test_a_second_listener_stands_aside_and_a_lone_sender_does_not_fail() -> None:
    address = _address()
    first, second = WakeListener(address, Waker()), WakeListener(address, Waker())
    assert first.start()
    assert not second.start()  # that worker falls back to its idle poll
    first.close()
    sender = WakeSender(_address())  # nobody listens here
    sender.send(DELIVERY)
    sender.close()


async def test_web_wakes_the_worker_process_after_a_commit(
    settings: Settings, client: httpx.AsyncClient, caller: Caller
) -> None:
    """The app fixture runs without workers, as the Procfile's ``web``; a separate worker (its
    own store on the same file) polls only once a minute, so a prompt delivery proves the wake
    came from web's commit."""
    receiver = Receiver()
    worker_settings = replace(settings, workers=replace(settings.workers, idle_poll_ms=60_000))
    store = open_store(worker_settings)
    await store.open()
    provider = provider_client(worker_settings)
    background = build_background(worker_settings, store, provider, system_clock)
    listener = WakeListener(wake_address(settings.storage.database_path), background.waker)
    assert listener.start()
    try:
        async with serve_app(receiver.app(), sock=bind_loopback()) as base:
            created = await client.post(
                "/v1/endpoints", headers=caller.headers, json={"url": f"{base}/hook"}
            )
            assert created.status_code == 201, created.text
            background.workers.start()
            await asyncio.sleep(0.2)  # the loops have looked once, found nothing, and sleep
            assert receiver.received == []
            ping = await client.post(
                f"/v1/endpoints/{created.json()['id']}/test", headers=caller.headers
            )
            assert ping.status_code == 202
            for _ in range(200):
                if receiver.received:
                    break
                await asyncio.sleep(0.025)
            assert [r.path for r in receiver.received] == ["/hook"]
    finally:
        listener.close()
        await background.close()
        await provider.aclose()
        await store.close()
