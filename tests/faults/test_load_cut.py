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
from tests.faults.live import Live, Load, live_app

pytestmark = pytest.mark.postgres_only


async def check_nothing_lost(live: Live, load: Load) -> None:
    assert live.answers.wrong() == []
    assert set(load.statuses) <= {200, 202, 503}, sorted(set(load.statuses))
    assert 503 in load.statuses, "the cut was not felt"
    assert load.acked, "nothing was acknowledged"
    settled = dict(await live.settle(timeout_s=45))
    assert set(load.acked) <= set(settled)
    assert all(status == "succeeded" for status in settled.values())
    callbacks = {row[0] for row in await live.db("SELECT id FROM callbacks")}
    acked_callbacks = live.answers.acked_callbacks()
    assert acked_callbacks
    assert set(acked_callbacks) <= callbacks
    assert set(settled) <= live.delivered_tasks()


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
