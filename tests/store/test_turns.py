"""``Turns``: mutual exclusion in arrival order, handed on back to back."""

from __future__ import annotations

import asyncio

import pytest

from service.store.turns import Turn, Turns

pytestmark = pytest.mark.sqlite_only  # SQLite's own file, WAL and writer


class _Takers:
    """A held ``Turns`` and tasks that each take it in turn and note their name."""

    def __init__(self) -> None:
        self.turns = Turns()
        self.got: list[str] = []

    async def take(self, name: str, turn: Turn | None = None) -> None:
        await self.turns.acquire(turn)
        self.got.append(name)
        self.turns.release()

    def start(self, name: str, turn: Turn | None = None) -> asyncio.Task[None]:
        return asyncio.create_task(self.take(name, turn))


async def test_one_holder_at_a_time_in_arrival_order() -> None:
    turns = Turns()
    order: list[int] = []
    inside = 0

    async def take(k: int) -> None:
        nonlocal inside
        async with turns:
            inside += 1
            assert inside == 1
            order.append(k)
            await asyncio.sleep(0)  # holders that wait: every release wakes everyone
            await asyncio.sleep(0)
            inside -= 1

    tasks = []
    for k in range(30):
        tasks.append(asyncio.create_task(take(k)))
        await asyncio.sleep(0)  # arrive in this order
    await asyncio.gather(*tasks)
    assert order == list(range(30))
    assert not turns.locked()


async def test_waiters_queued_behind_a_holder_run_back_to_back() -> None:
    """Nothing else the loop had to do runs between them: with ``asyncio.Lock`` each hand-over
    waits behind the loop's other work, and a group's members spread over milliseconds."""
    turns = Turns()
    ticks = 0
    seen: list[int] = []

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def member() -> None:
        async with turns:
            seen.append(ticks)

    await turns.acquire()
    noise = asyncio.create_task(other_work())
    members = [asyncio.create_task(member()) for _ in range(8)]
    await asyncio.sleep(0.01)  # all queued; the noise keeps ticking
    turns.release()
    await asyncio.gather(*members)
    noise.cancel()
    assert len(seen) == 8
    assert len(set(seen)) == 1, seen


async def test_a_waiter_cancelled_in_the_queue_gives_up_its_place() -> None:
    t = _Takers()
    await t.turns.acquire()
    first = t.start("first")
    second = t.start("second")
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    t.turns.release()
    await asyncio.wait_for(second, 1)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert t.got == ["second"]
    assert not t.turns.locked()


async def test_a_waiter_woken_then_cancelled_before_it_ran_does_not_strand_the_rest() -> None:
    t = _Takers()
    await t.turns.acquire()
    head = t.start("head")
    rest = [t.start(f"rest{k}") for k in range(3)]
    await asyncio.sleep(0)
    t.turns.release()  # wakes them all; the head's turn is next
    head.cancel()  # before it ran
    await asyncio.wait_for(asyncio.gather(*rest), 1)
    with pytest.raises(asyncio.CancelledError):
        await head
    assert t.got == ["rest0", "rest1", "rest2"]
    assert not t.turns.locked()


async def test_a_newcomer_does_not_take_the_lock_from_those_already_woken() -> None:
    t = _Takers()
    await t.turns.acquire()
    waiting = t.start("waiting")
    await asyncio.sleep(0)
    t.turns.release()  # "waiting" is woken but has not run yet
    await t.take("newcomer")
    await waiting
    assert t.got == ["waiting", "newcomer"]


async def test_releasing_what_is_not_held_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        Turns().release()


async def test_a_reserved_place_comes_before_later_arrivals() -> None:
    """The group's committer reserves its place before its task starts: those queued before it
    go first, those arriving after it wait for it."""
    t = _Takers()
    await t.turns.acquire()
    before = t.start("before")
    await asyncio.sleep(0)
    turn = t.turns.reserve()
    after = t.start("after")
    await asyncio.sleep(0)
    reserved = t.start("reserved", turn)
    t.turns.release()
    await asyncio.wait_for(asyncio.gather(before, after, reserved), 1)
    assert t.got == ["before", "reserved", "after"]


async def test_a_forgotten_place_is_skipped() -> None:
    turns = Turns()
    await turns.acquire()
    turn = turns.reserve()
    later = asyncio.create_task(turns.acquire())
    await asyncio.sleep(0)
    turns.release()
    await asyncio.sleep(0)
    assert not later.done()  # the reserved place is ahead of it
    turns.forget(turn)
    await asyncio.wait_for(later, 1)
    assert turns.locked()
    turns.forget(turn)  # again: nothing to do
    turns.release()
