"""``dispatch.Lanes``: the limits on requests in flight, lanes that never wait for a commit,
and a round that ends only when every claimed delivery is recorded.

The attempt and record functions are the test's own: they stand for the worker's send and
write, so each test can hold one back at the moment it is about."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from service.core.ids import new_id
from service.delivery.dispatch import Lanes
from service.store.base import ClaimedDelivery, Delivery
from tests.factories import make_endpoint

NOW = 1_780_000_000_000


def claimed(endpoints: int, count: int) -> list[ClaimedDelivery]:
    eps = [make_endpoint(new_id("acct", NOW), now=NOW) for _ in range(endpoints)]
    items = []
    for n in range(count):
        ep = eps[n % endpoints]
        d = Delivery(new_id("dlv", NOW), new_id("evt", NOW), ep.id, ep.account_id, "pending",
                     0, NOW, False, None, None, NOW, NOW)  # fmt: skip
        items.append(ClaimedDelivery(d, "token", d.event_id, "task.succeeded", "{}", ep))
    return items


async def test_in_flight_stays_within_both_limits_and_every_delivery_is_recorded() -> None:
    in_flight: Counter[str] = Counter()
    peak_total = 0
    peak_per_endpoint = 0
    written: list[str] = []

    async def attempt(item: ClaimedDelivery, _claimed_at: int) -> str:
        nonlocal peak_total, peak_per_endpoint
        in_flight[item.endpoint.id] += 1
        peak_total = max(peak_total, sum(in_flight.values()))
        peak_per_endpoint = max(peak_per_endpoint, in_flight[item.endpoint.id])
        await asyncio.sleep(0.001)
        in_flight[item.endpoint.id] -= 1
        return item.delivery.id

    async def record(batch: list[str]) -> list[bool]:
        await asyncio.sleep(0)
        written.extend(batch)
        return [True] * len(batch)

    items = claimed(endpoints=3, count=60)
    lanes = Lanes(attempt, record, concurrency=5, per_endpoint=2)
    lanes.add(items, NOW)
    assert await asyncio.wait_for(lanes.until_at_most(0), 5) is False
    assert sorted(written) == sorted(i.delivery.id for i in items)
    assert (peak_total, peak_per_endpoint) == (5, 2)
    assert lanes.unfinished == 0


async def test_a_lane_that_ran_out_of_work_leaves_room_at_once() -> None:
    """With one lane allowed: the lane finds the queue empty and ends, and in the same loop
    pass, before its task's callbacks run, a new claim arrives. It must get a lane, or it is
    never sent and the round never ends."""
    lanes: Lanes[str]
    later = claimed(endpoints=1, count=2)
    sent: list[str] = []

    async def attempt(item: ClaimedDelivery, claimed_at: int) -> str:
        sent.append(item.delivery.id)
        if item is later[0]:
            asyncio.get_running_loop().call_soon(lanes.add, [later[1]], claimed_at)
        return item.delivery.id

    async def record(batch: list[str]) -> list[bool]:
        return [True] * len(batch)

    lanes = Lanes(attempt, record, concurrency=1, per_endpoint=1)
    lanes.add([later[0]], NOW)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(lanes.until_at_most(0), 2)
    assert sent == [later[0].delivery.id, later[1].delivery.id]


async def test_a_lane_takes_its_next_delivery_while_the_last_one_is_written() -> None:
    commit = asyncio.Event()
    sent: list[str] = []

    async def attempt(item: ClaimedDelivery, _claimed_at: int) -> str:
        sent.append(item.delivery.id)
        return item.delivery.id

    async def record(batch: list[str]) -> list[bool]:
        await commit.wait()  # a commit stuck behind another process's write lock
        return [True] * len(batch)

    items = claimed(endpoints=1, count=4)
    lanes = Lanes(attempt, record, concurrency=1, per_endpoint=1)
    lanes.add(items, NOW)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(sent) == 4  # one lane, four sends: none waited for a write
    assert lanes.unfinished == 4
    commit.set()
    await asyncio.wait_for(lanes.until_at_most(0), 2)


async def test_news_during_the_last_writes_ends_the_wait_and_is_taken() -> None:
    commit = asyncio.Event()

    async def attempt(item: ClaimedDelivery, _claimed_at: int) -> str:
        return item.delivery.id

    async def record(batch: list[str]) -> list[bool]:
        await commit.wait()
        return [True] * len(batch)

    lanes = Lanes(attempt, record, concurrency=2, per_endpoint=2)
    lanes.add(claimed(endpoints=1, count=2), NOW)
    woken = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, woken.set)
    assert await asyncio.wait_for(lanes.until_at_most(0, woken), 2) is True
    assert not woken.is_set()
    assert lanes.unfinished == 2
    commit.set()
    assert await asyncio.wait_for(lanes.until_at_most(0, woken), 2) is False


@pytest.mark.usefixtures("json_logs")
async def test_a_failed_write_is_logged_and_still_ends_the_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def attempt(item: ClaimedDelivery, _claimed_at: int) -> str:
        return item.delivery.id

    async def record(batch: list[str]) -> list[bool]:
        raise OSError("disk full")

    items = claimed(endpoints=1, count=3)
    lanes = Lanes(attempt, record, concurrency=2, per_endpoint=2)
    lanes.add(items, NOW)
    assert await asyncio.wait_for(lanes.until_at_most(0), 2) is False
    assert lanes.unfinished == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    crashed = [line for line in lines if line["event"] == "delivery.attempt_crashed"]
    assert sorted(line["delivery_id"] for line in crashed) == sorted(i.delivery.id for i in items)
    assert all("disk full" in line["exception"] for line in crashed)
