"""Producers and delivery workers at once on one SQLite file: every (event, endpoint) pair is
delivered at least once, none is lost, and no delivery is left pending or claimed.

Each producer and each worker has its own store (its own connections, as separate
processes would), so claims race for real through SQLite's locks. The receiver answers 500 to
the first request of every 7th pair, so retries run concurrently with first attempts; the
workers' clock runs ``SPEED`` times faster than the wall clock so the dev schedule's 1 s wait
passes in a tenth of that.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response

from service.app import open_store
from service.core.clock import system_clock
from service.core.endpoints import Endpoint
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.delivery.sender import Sender
from service.delivery.ssrf import TargetPolicy
from service.delivery.worker import DeliveryWorker
from service.outbox import record_event
from service.settings import Settings, load_settings
from service.store.base import Account, Store
from tests.backends import reader
from tests.conftest import settings_env
from tests.delivery.receiver import Received, Receiver
from tests.factories import make_endpoint
from tests.servers import serve_app

PRODUCERS = 4
EVENTS_EACH = 50
WORKERS = 3
FAIL_EVERY = 7
SPEED = 10
#: the third endpoint's filter: half of the events are of this type, half are not
FILTERED = "task.failed"


@dataclass
class FlakyReceiver(Receiver):
    """Answers 500 to the first request of every ``FAIL_EVERY``-th (webhook-id, path) pair it
    sees, 200 to everything else: each pair needs at most two attempts."""

    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: set[tuple[str, str]] = field(default_factory=set)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        pair = (headers.get("webhook-id", ""), request.url.path)
        self.received.append(Received(request.url.path, headers, body))
        if pair not in self.pairs:
            self.pairs[pair] = len(self.pairs)
            if self.pairs[pair] % FAIL_EVERY == FAIL_EVERY - 1:
                self.failed.add(pair)
                return Response("try again", status_code=500)
        return Response(status_code=200)


def _endpoint(account_id: str, url: str, types: tuple[str, ...] | None, now: int) -> Endpoint:
    return make_endpoint(account_id, url, now=now, event_types=types)


async def _open(settings: Settings) -> Store:
    store = open_store(settings)
    await store.open()
    return store


async def _rows(store: Store, sql: str, *args: object) -> list[tuple[Any, ...]]:
    async with reader(store).execute(sql, args) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[list[Store]]:
    """One store per producer and per worker, then one for the test: opened in turn (the first
    one migrates), all on the same file."""
    settings = load_settings(settings_env(tmp_path))
    opened: list[Store] = []
    try:
        for _ in range(PRODUCERS + WORKERS + 1):
            opened.append(await _open(settings))
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_producers_and_workers_lose_nothing(tmp_path: Path, stores: list[Store]) -> None:
    settings = load_settings(settings_env(tmp_path))
    # Small batches, so the workers interleave their claims; a lease far longer than any send,
    # so a pair received twice with a 200 would mean two workers held one delivery at once.
    delivery = replace(settings.delivery, batch_size=16, lease_seconds=120)
    producer_stores, worker_stores, mine = (
        stores[:PRODUCERS], stores[PRODUCERS:-1], stores[-1],
    )  # fmt: skip
    t0 = system_clock()

    def fast_clock() -> int:
        return t0 + (system_clock() - t0) * SPEED

    account = Account(new_id("acct", t0), "subscriber", t0)
    receiver = FlakyReceiver()
    policy = TargetPolicy.from_settings(delivery.allowed_networks)
    senders = [Sender(delivery, policy) for _ in worker_stores]
    workers = [
        DeliveryWorker(store, sender, delivery, fast_clock)
        for store, sender in zip(worker_stores, senders, strict=True)
    ]
    try:
        async with serve_app(receiver.app()) as base:
            filters: dict[str, tuple[str, ...] | None] = {
                "/all-1": None, "/all-2": None, "/failed-only": (FILTERED,),
            }  # fmt: skip
            endpoints = {
                path: _endpoint(account.id, base + path, types, t0)
                for path, types in filters.items()
            }
            async with mine.transaction() as tx:
                await tx.insert_account(account)
                for endpoint in endpoints.values():
                    await tx.insert_endpoint(endpoint)
            events, claimed = await _run(producer_stores, workers, mine, account.id)
    finally:
        for sender in senders:
            await sender.close()

    # Every pair the filters call for arrived at least once, under the event's id, signed with
    # the endpoint's secret; nothing arrived that the filters exclude.
    by_id = {event.id: event for event in events}
    assert len(by_id) == PRODUCERS * EVENTS_EACH
    expected = {
        (event.id, path)
        for event in events
        for path, types in filters.items()
        if types is None or event.type in types
    }
    assert len(expected) == PRODUCERS * EVENTS_EACH * 2 + PRODUCERS * EVENTS_EACH // 2
    seen: Counter[tuple[str, str]] = Counter()
    for got in receiver.received:
        event = by_id[got.headers["webhook-id"]]
        assert got.body == event.payload.encode()
        verified = Webhook(endpoints[got.path].secret).verify(got.body, got.headers)
        assert verified == json.loads(event.payload)
        seen[(event.id, got.path)] += 1
    lost = expected - set(seen)
    assert not lost, f"{len(lost)} pairs never delivered"
    assert set(seen) == expected
    assert receiver.failed  # retries did happen
    retried = dict.fromkeys(receiver.failed, 2)
    duplicates = sum(n - retried.get(pair, 1) for pair, n in seen.items())

    # The rows agree: one delivery per pair, all delivered and unclaimed, one attempt row per
    # request the receiver saw.
    path_of = {endpoint.id: path for path, endpoint in endpoints.items()}
    rows = await _rows(
        mine,
        "SELECT d.event_id, d.endpoint_id, d.status, d.lease_until, d.claim_token, d.attempts,"
        " (SELECT COUNT(*) FROM attempts a WHERE a.delivery_id = d.id) FROM deliveries d",
    )
    assert len(rows) == len(expected)
    assert {(r[0], path_of[r[1]]) for r in rows} == expected
    assert {r[2:5] for r in rows} == {("delivered", None, None)}
    assert {(r[0], path_of[r[1]]): r[5] for r in rows} == dict(seen)
    assert all(r[5] == r[6] for r in rows)

    busy = sum(1 for n in claimed if n)
    assert busy >= 2, claimed  # the workers really did share the work
    print(
        f"\nconcurrency: {len(expected)} pairs, {len(receiver.received)} requests,"
        f" {len(receiver.failed)} retried after a 500, {duplicates} duplicates;"
        f" claimed per worker {claimed}"
    )
    assert duplicates == 0


async def _run(
    producer_stores: list[Store],
    workers: list[DeliveryWorker],
    mine: Store,
    account_id: str,
) -> tuple[list[Event], list[int]]:
    """The producers and the workers at once, bounded; returns the events written and how many
    deliveries each worker claimed (attempts included)."""
    events: list[Event] = []
    claimed = [0] * len(workers)

    async def produce(store: Store, p: int) -> None:
        for n in range(EVENTS_EACH):
            now = system_clock()
            event_type = FILTERED if n % 2 else "task.succeeded"
            payload = envelope(event_type, {"producer": p, "n": n}, now)
            event = Event(new_id("evt", now), account_id, event_type, None, payload, now)
            async with store.transaction() as tx:
                await record_event(tx, event, now)
            events.append(event)
            await asyncio.sleep(0)

    async def unfinished() -> int:
        [(n,)] = await _rows(mine, "SELECT COUNT(*) FROM deliveries WHERE status != 'delivered'")
        return int(n)

    async def work(i: int, producing: asyncio.Future[list[None]]) -> None:
        while True:
            got = await workers[i].deliver_due()
            claimed[i] += got
            if got:
                continue
            if producing.done() and await unfinished() == 0:
                return
            await asyncio.sleep(0.01)

    async def everything() -> None:
        producing = asyncio.gather(*(produce(s, p) for p, s in enumerate(producer_stores)))
        await asyncio.gather(producing, *(work(i, producing) for i in range(len(workers))))

    try:
        await asyncio.wait_for(everything(), 15)
    except TimeoutError:
        left = await _rows(mine, "SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        raise AssertionError(
            f"not done in 15 s: {len(events)} events written, deliveries by status {left}"
        ) from None
    return events, claimed


async def test_a_worker_does_not_send_what_its_lease_no_longer_covers(
    tmp_path: Path, stores: list[Store]
) -> None:
    """Worker A claims two deliveries to one endpoint (one request at a time); the first hangs
    past the lease. Worker B claims both once the lease is out and delivers them. Sending the
    first again is the price of at least once (A was mid-send); sending the second is not: A
    had not started it, and its claim had expired before it did."""
    settings = load_settings(settings_env(tmp_path))
    delivery = replace(settings.delivery, lease_seconds=1, batch_size=2, per_endpoint_concurrency=1)
    now = [system_clock()]
    account = Account(new_id("acct", now[0]), "subscriber", now[0])
    receiver = Receiver(script={"/slow": ["hang", 200]})
    policy = TargetPolicy.from_settings(delivery.allowed_networks)
    senders = [Sender(delivery, policy) for _ in range(2)]
    a, b = (
        DeliveryWorker(store, sender, delivery, lambda: now[0])
        for store, sender in zip(stores[:2], senders, strict=True)
    )
    mine = stores[-1]
    try:
        async with serve_app(receiver.app()) as base:
            try:
                async with mine.transaction() as tx:
                    await tx.insert_account(account)
                    await tx.insert_endpoint(_endpoint(account.id, base + "/slow", None, now[0]))
                    for n in range(2):
                        payload = envelope("task.succeeded", {"n": n}, now[0])
                        await record_event(
                            tx,
                            Event(new_id("evt", now[0]), account.id, "task.succeeded", None,
                                  payload, now[0]),
                            now[0],
                        )  # fmt: skip
                sending = asyncio.create_task(a.deliver_due())
                try:
                    for _ in range(500):
                        if receiver.received:
                            break
                        await asyncio.sleep(0.01)
                    assert len(receiver.received) == 1  # A's first request, held open
                    now[0] += 2_000  # both of A's leases run out
                    assert await asyncio.wait_for(b.deliver_due(), 5) == 2
                finally:
                    receiver.release.set()
                    await asyncio.wait_for(sending, 5)
            finally:
                receiver.release.set()
    finally:
        for sender in senders:
            await sender.close()

    assert await _rows(mine, "SELECT status, attempts FROM deliveries") == [("delivered", 1)] * 2
    held = receiver.received[0].headers["webhook-id"]
    counts = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert counts[held] == 2  # mid-send when the lease ran out: at least once allows this
    [(other, sent)] = [(k, n) for k, n in counts.items() if k != held]
    assert sent == 1, f"{other} was sent {sent} times, {sent - 1} after A's lease had run out"
