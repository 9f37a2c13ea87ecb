"""Many processes on one PostgreSQL database, each with its own pool (a store each, as separate
``web`` and ``worker`` processes have): two workers claiming at once never take the same
delivery, a worker whose lease ran out and was taken over changes nothing, and a commit in one
process wakes a worker listening in another — and a listener that loses its connection comes
back by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.core.endpoints import ping_event
from service.core.ids import new_id
from service.core.ledger import initial_state
from service.core.pagination import PageRequest
from service.core.tasks import Task, TaskSpec
from service.outbox import deliver
from service.store.base import Account, ClaimedDelivery, DeliveryOutcome, Store
from service.store.postgres.notify import DELIVERY, SUBMITTER, PgWakeListener
from tests import factories
from tests.backends import CURRENT, make_store

pytestmark = pytest.mark.postgres_only  # many pools on one server: PostgreSQL's own case

NOW = 1_780_000_000_000
LEASE = 30_000


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on the test's database: two processes."""
    one = make_store(tmp_path / "f.db", secrets=factories.SECRET_BOX)
    two = make_store(tmp_path / "f.db", secrets=factories.SECRET_BOX)
    await one.open()
    await two.open()
    yield one, two
    await two.close()
    await one.close()


async def queued_deliveries(store: Store, n: int) -> list[str]:
    """``n`` ping deliveries due at ``NOW``, to one endpoint; their ids."""
    account = Account(new_id("acct", NOW), "fleet", NOW)
    endpoint = factories.make_endpoint(account.id, now=NOW)
    ids: list[str] = []
    async with store.transaction() as tx:
        await tx.insert_account(account)
        await tx.insert_endpoint(endpoint)
        for _ in range(n):
            event = ping_event(new_id("evt", NOW), endpoint, NOW)
            await tx.insert_event(event)
            ids += [d.id for d in await deliver(tx, event, [endpoint], NOW)]
    return ids


def finished(claimed: ClaimedDelivery, now: int) -> DeliveryOutcome:
    return DeliveryOutcome(
        claimed, status="delivered", next_attempt_at=None, attempts=1, last_status=200,
        last_error=None, updated_at=now,
    )  # fmt: skip


async def test_two_workers_claiming_at_once_never_take_the_same_delivery(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    queued = await queued_deliveries(one, 120)

    async def drain(store: Store) -> list[str]:
        taken: list[str] = []
        while batch := await store.claim_due_deliveries(NOW, LEASE, 7):
            taken += [c.delivery.id for c in batch]
            await asyncio.sleep(0)
        return taken

    # four claimers, two per pool, racing until nothing is left
    results = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    claimed = [d for r in results for d in r]
    assert sorted(claimed) == sorted(queued)  # every delivery claimed, none twice
    assert all(results[1]) or all(results[3])  # the second pool took its share


async def test_a_worker_whose_lease_was_taken_over_changes_nothing(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    [delivery_id] = await queued_deliveries(one, 1)
    [stale] = await one.claim_due_deliveries(NOW, LEASE, 10)
    assert await two.claim_due_deliveries(NOW + LEASE - 1, LEASE, 10) == []  # still leased
    [fresh] = await two.claim_due_deliveries(NOW + LEASE, LEASE, 10)  # ran out: taken over
    assert fresh.claim_token != stale.claim_token

    async with one.transaction() as tx:  # the first worker comes back from a long send
        assert await tx.finish_deliveries([finished(stale, NOW + LEASE + 1)]) == 0
        assert not await tx.renew_delivery_lease(stale, NOW + 2 * LEASE)
    [row] = await two.list_deliveries_for_endpoint(fresh.endpoint.id, None, PageRequest(limit=10))
    assert (row.id, row.status, row.attempts) == (delivery_id, "pending", 0)

    async with two.transaction() as tx:
        assert await tx.finish_deliveries([finished(fresh, NOW + LEASE + 2)]) == 1
    [row] = await one.list_deliveries_for_endpoint(fresh.endpoint.id, None, PageRequest(limit=10))
    assert (row.status, row.attempts) == ("delivered", 1)


class Woken:
    """What a listener was woken with, and when."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, float]] = []
        self.event = asyncio.Event()

    def __call__(self, what: bytes) -> None:
        self.seen.append((what, time.monotonic()))
        self.event.set()

    async def next(self, within_s: float) -> bytes:
        await asyncio.wait_for(self.event.wait(), within_s)
        self.event.clear()
        return self.seen[-1][0]


def _task(account_id: str) -> Task:
    return Task(
        id=new_id("task", NOW), account_id=account_id,
        spec=TaskSpec(prompt="p", model="nano-banana", type="text-to-image", provider="simulator"),
        state=initial_state(NOW), cost_credits=15, refunded_credits=0, created_at=NOW,
    )  # fmt: skip


@pytest.fixture
async def listening() -> AsyncIterator[tuple[PgWakeListener, Woken]]:
    woken = Woken()
    listener = PgWakeListener(CURRENT.url, woken, check_s=0.5, backoff_s=(0.05, 0.2))
    listener.start()
    await asyncio.wait_for(listener.listening.wait(), 5)
    yield listener, woken
    await listener.close()


async def test_a_commit_in_one_process_wakes_a_worker_in_another_on_commit_only(
    stores: tuple[Store, Store], listening: tuple[PgWakeListener, Woken]
) -> None:
    one, _ = stores
    _, woken = listening
    account = Account(new_id("acct", NOW), "fleet", NOW)
    async with one.transaction() as tx:
        await tx.insert_account(account)
    await asyncio.sleep(0.1)
    assert woken.seen == []  # nothing queued: nothing sent
    latencies: list[float] = []
    for _ in range(5):
        before = len(woken.seen)
        async with one.transaction() as tx:
            await tx.insert_task(_task(account.id))
            await asyncio.sleep(0.15)
            assert len(woken.seen) == before  # not before the commit
            committing = time.monotonic()
        assert await woken.next(within_s=1) == SUBMITTER
        latencies.append(woken.seen[-1][1] - committing)
    assert max(latencies) < 0.1, latencies

    rolled_back = False
    try:
        async with one.transaction() as tx:
            await tx.insert_task(_task(account.id))
            raise RuntimeError("changed my mind")
    except RuntimeError:
        rolled_back = True
    assert rolled_back
    await queued_deliveries(one, 1)  # deliveries alone wake the delivery loop
    assert await woken.next(within_s=1) == DELIVERY
    assert SUBMITTER not in {w for w, _ in woken.seen[5:]}  # the rolled-back task woke nobody


async def test_a_listener_that_loses_its_connection_comes_back_and_wakes_once(
    stores: tuple[Store, Store], listening: tuple[PgWakeListener, Woken]
) -> None:
    one, _ = stores
    listener, woken = listening
    first = listener.server_pid
    assert first is not None
    admin = await asyncpg.connect(CURRENT.url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    # Back by itself, and it wakes the loops once: what was committed meanwhile is looked at.
    assert await woken.next(within_s=5) == SUBMITTER
    assert listener.listening.is_set()
    assert listener.server_pid not in (None, first)
    await queued_deliveries(one, 1)
    assert await woken.next(within_s=1) == DELIVERY


async def test_a_burst_of_commits_is_told_in_a_few_notifications(
    stores: tuple[Store, Store], listening: tuple[PgWakeListener, Woken]
) -> None:
    one, _ = stores
    _, woken = listening
    account = Account(new_id("acct", NOW), "fleet", NOW)
    async with one.transaction() as tx:
        await tx.insert_account(account)

    async def queue_one() -> None:
        async with one.transaction() as tx:
            await tx.insert_task(_task(account.id))

    await asyncio.gather(*(queue_one() for _ in range(100)))
    await asyncio.sleep(0.3)
    assert 1 <= len(woken.seen) < 50, len(woken.seen)
    assert {what for what, _ in woken.seen} == {SUBMITTER}
