"""A process that starts while PostgreSQL is down waits for it (``app.open_when_ready``)
instead of exiting: replicas restarted during a database restart come up with it."""

from __future__ import annotations

import asyncio

import pytest

from service.app import open_when_ready
from service.errors import StoreUnavailable
from service.store.postgres.store import PostgresStore
from tests import backends
from tests.cut_proxy import cut_proxy

pytestmark = pytest.mark.postgres_only


async def test_a_database_that_never_comes_gives_up_after_the_wait() -> None:
    async with cut_proxy(backends.CURRENT.url) as proxy:
        await proxy.cut()
        store = PostgresStore(proxy.proxied_url(backends.CURRENT.url))
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable):
            await open_when_ready(store, wait_s=0.7)
        assert asyncio.get_running_loop().time() - started >= 0.5


async def test_a_database_that_comes_up_late_is_waited_for() -> None:
    async with cut_proxy(backends.CURRENT.url) as proxy:
        await proxy.cut()
        store = PostgresStore(proxy.proxied_url(backends.CURRENT.url))

        async def later() -> None:
            await asyncio.sleep(0.6)
            await proxy.restore()

        arriving = asyncio.create_task(later())
        applied = await open_when_ready(store, wait_s=10)
        await arriving
        try:
            assert applied  # it migrated the fresh schema once the server answered
            assert await store.balance("acct_none") == 0
        finally:
            await store.close()
