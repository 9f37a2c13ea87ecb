"""Two transactions that wait on each other: PostgreSQL undoes one, and the store reports it as
``StoreBusy`` (503 ``store_busy``, retry) — never a 500, and the other goes through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.core.clock import system_clock
from service.errors import StoreBusy
from service.store.base import Store
from service.usecases import create_account
from tests import backends

pytestmark = pytest.mark.postgres_only


async def test_a_deadlock_is_store_busy_and_the_other_transaction_commits(tmp_path: Path) -> None:
    one, two = backends.make_store(tmp_path / "x.db"), backends.make_store(tmp_path / "x.db")
    await one.open()
    await two.open()
    try:
        a = (await create_account(one, system_clock, "a", 10)).id
        b = (await create_account(one, system_clock, "b", 10)).id
        both_hold = asyncio.Barrier(2)

        async def lock(store: Store, first: str, second: str) -> str:
            async with store.transaction() as tx:
                await tx.lock_account(first)
                await both_hold.wait()
                await tx.lock_account(second)
            return "committed"

        outcomes = await asyncio.gather(lock(one, a, b), lock(two, b, a), return_exceptions=True)
        assert sorted(map(type, outcomes), key=str) == sorted([str, StoreBusy], key=str), outcomes
    finally:
        await one.close()
        await two.close()
