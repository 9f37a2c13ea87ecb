"""The database cut (or hung) under load and brought back, with the workers running: every
answer is a 2xx or a 503 with Retry-After, none hangs; the same process serves again without a
restart; every task and callback acknowledged is in the database; and the workers finish every
task and deliver its event afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests import backends
from tests.cut_proxy import CutProxy
from tests.faults.live import Load, check_nothing_lost, live_app

pytestmark = pytest.mark.postgres_only


@pytest.mark.parametrize("fault", ["cut", "black_hole"])
async def test_a_cut_under_load_loses_nothing_and_heals(
    tmp_path: Path, proxy: CutProxy, fault: str
) -> None:
    async with live_app(tmp_path, proxy.proxied_url(backends.CURRENT.url)) as live:
        load = Load(live)
        async with load.running(clients=6):
            await asyncio.sleep(1.5)
            await (proxy.cut() if fault == "cut" else proxy.black_hole())
            await asyncio.sleep(2.0)
            await proxy.restore()
            before = len(load.acked)
            await asyncio.sleep(2.0)
        assert len(load.acked) > before, "no task was accepted after the restore"
        ready = await live.http.get("/readyz")
        assert ready.status_code == 200
        await check_nothing_lost(live, load)
