"""The store's endpoint, delivery and attempt queries on a real file, including what the delivery
worker relies on: a claim leases due deliveries once, carries the exact payload and the
endpoint, and only the claim's holder can finish it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from service.core.endpoints import Endpoint, ping_event
from service.core.events import Event
from service.core.ids import new_id
from service.core.pagination import PageRequest
from service.core.signing import encode_secret
from service.outbox import deliver, record_event
from service.store.base import Account, Attempt, ClaimedDelivery, DeliveryOutcome, Store
from tests import factories
from tests.backends import make_store

NOW = 1_780_000_000_000
LEASE = 30_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = make_store(tmp_path / "d.db", secrets=factories.SECRET_BOX)
    await s.open()
    yield s
    await s.close()


def make_endpoint(account_id: str, **changes: Any) -> Endpoint:
    return factories.make_endpoint(account_id, now=NOW, secret=encode_secret(b"k" * 32), **changes)


async def account_with(store: Store, *endpoints: dict[str, Any]) -> list[Endpoint]:
    account = Account(new_id("acct", NOW), "a", NOW)
    made = [make_endpoint(account.id, **changes) for changes in endpoints]
    async with store.transaction() as tx:
        await tx.insert_account(account)
        for endpoint in made:
            await tx.insert_endpoint(endpoint)
    return made


async def test_an_endpoint_round_trips_and_deleted_ones_are_invisible(store: Store) -> None:
    first, second = await account_with(
        store,
        {"event_types": ("task.failed", "ping"), "previous_secret": "whsec_b2xk"},
        {"enabled": False, "disabled_reason": "gone"},
    )

    assert await store.get_endpoint(first.account_id, first.id) == first
    assert await store.get_endpoint("acct_other", first.id) is None
    assert await store.endpoints_for_account(first.account_id) == [first]
    page = await store.list_endpoints(first.account_id, PageRequest(limit=10))
    assert [e.id for e in page] == sorted([first.id, second.id], reverse=True)

    async with store.transaction() as tx:
        assert await tx.delete_endpoint(first.account_id, first.id, NOW + 1)
        assert not await tx.delete_endpoint(first.account_id, first.id, NOW + 2)
        assert not await tx.update_endpoint(replace(first, description="x"))

    assert await store.get_endpoint(first.account_id, first.id) is None
    assert await store.endpoints_for_account(first.account_id) == []
    kept = await store.get_endpoint_by_id(first.id)
    assert kept is not None
    assert (kept.deleted_at, kept.enabled) == (NOW + 1, False)


async def test_a_claim_leases_due_deliveries_once_with_payload_and_endpoint(
    store: Store,
) -> None:
    (endpoint,) = await account_with(store, {})
    event = ping_event(new_id("evt", NOW), endpoint, NOW)
    later = Event(new_id("evt", NOW), endpoint.account_id, "task.queued", None, "{}", NOW)
    async with store.transaction() as tx:
        await tx.insert_event(event)
        (due,) = await deliver(tx, event, [endpoint], NOW)
        await tx.insert_event(later)
        await deliver(tx, later, [endpoint], NOW + 60_000)

    assert await store.claim_due_deliveries(NOW - 1, LEASE, 10) == []
    (claimed,) = await store.claim_due_deliveries(NOW, LEASE, 10)

    assert claimed.delivery == due
    assert (claimed.event_id, claimed.event_type, claimed.payload) == (
        event.id,
        "ping",
        event.payload,
    )
    assert claimed.endpoint == endpoint
    assert claimed.claim_token
    assert await store.claim_due_deliveries(NOW + LEASE - 1, LEASE, 10) == []


async def test_only_the_current_claim_can_finish_a_delivery(store: Store) -> None:
    (endpoint,) = await account_with(store, {})
    event = ping_event(new_id("evt", NOW), endpoint, NOW)
    async with store.transaction() as tx:
        await tx.insert_event(event)
        await deliver(tx, event, [endpoint], NOW)
    (stale,) = await store.claim_due_deliveries(NOW, LEASE, 10)
    # the lease runs out: another worker takes the delivery over
    (current,) = await store.claim_due_deliveries(NOW + LEASE, LEASE, 10)
    assert current.claim_token != stale.claim_token

    def failed_once(claimed: ClaimedDelivery) -> DeliveryOutcome:
        return DeliveryOutcome(
            claimed,
            status="pending",
            next_attempt_at=NOW + LEASE + 5000,
            attempts=1,
            last_status=500,
            last_error="HTTP 500",
            updated_at=NOW + LEASE + 10,
        )

    async with store.transaction() as tx:
        assert await tx.finish_deliveries([failed_once(stale)]) == 0
        assert await tx.finish_deliveries([failed_once(current), failed_once(stale)]) == 1
        assert await tx.finish_deliveries([failed_once(current)]) == 0  # finishing drops the claim

    (delivery,) = await store.list_deliveries_for_endpoint(endpoint.id, None, PageRequest(10))
    assert (delivery.status, delivery.attempts, delivery.last_status, delivery.last_error) == (
        "pending", 1, 500, "HTTP 500",
    )  # fmt: skip
    assert delivery.next_attempt_at == NOW + LEASE + 5000
    assert delivery.updated_at == NOW + LEASE + 10
    # finished: the lease is gone, so it is claimable again as soon as it is due
    assert await store.claim_due_deliveries(NOW + LEASE + 4999, LEASE, 10) == []
    assert len(await store.claim_due_deliveries(NOW + LEASE + 5000, LEASE, 10)) == 1


async def test_a_claim_takes_the_oldest_due_first_up_to_the_limit(store: Store) -> None:
    (endpoint,) = await account_with(store, {})
    async with store.transaction() as tx:
        for offset in (3, 1, 2):
            event = ping_event(new_id("evt", NOW + offset), endpoint, NOW + offset)
            await tx.insert_event(event)
            await deliver(tx, event, [endpoint], NOW + offset)

    first = await store.claim_due_deliveries(NOW + 10, LEASE, 2)
    rest = await store.claim_due_deliveries(NOW + 10, LEASE, 2)

    assert [c.delivery.next_attempt_at for c in first] == [NOW + 1, NOW + 2]
    assert [c.delivery.next_attempt_at for c in rest] == [NOW + 3]


async def test_attempts_and_delivery_lists(store: Store) -> None:
    one, two = await account_with(store, {}, {"event_types": ("task.queued",)})
    event = Event(new_id("evt", NOW), one.account_id, "task.queued", None, "{}", NOW)
    async with store.transaction() as tx:
        made = await record_event(tx, event, NOW)
        await tx.insert_attempts(
            [
                Attempt(new_id("att", NOW), made[0].id, 1, None, 5000, "", "timeout", False, NOW),
                Attempt(new_id("att", NOW), made[0].id, 2, 200, 12, "ok", None, True, NOW + 1),
            ]
        )

    assert {d.endpoint_id for d in made} == {one.id, two.id}
    by_event = await store.list_deliveries_for_event(event.id, PageRequest(limit=1))
    assert len(by_event) == 2  # limit + 1: the caller can tell another page exists
    rest = await store.list_deliveries_for_event(event.id, PageRequest(1, by_event[0].id))
    assert {d.id for d in [by_event[0], *rest]} == {d.id for d in made}
    attempts = await store.list_attempts(made[0].id)
    assert [(a.number, a.status_code, a.error, a.manual) for a in attempts] == [
        (1, None, "timeout", False),
        (2, 200, None, True),
    ]
    assert await store.list_deliveries_for_endpoint(one.id, "failed", PageRequest(10)) == []
    pending = await store.list_deliveries_for_endpoint(one.id, "pending", PageRequest(10))
    assert [d.endpoint_id for d in pending] == [one.id]
    found = await store.get_delivery(one.account_id, made[0].id)
    assert found == made[0]
    assert await store.get_delivery("acct_other", made[0].id) is None


async def test_endpoint_disabled_events_skip_the_endpoint_they_are_about(
    store: Store,
) -> None:
    about, other = await account_with(store, {}, {})
    event = Event(new_id("evt", NOW), about.account_id, "endpoint.disabled", None, "{}", NOW)

    async with store.transaction() as tx:
        made = await record_event(tx, event, NOW, exclude_endpoint=about.id)

    assert [d.endpoint_id for d in made] == [other.id]
