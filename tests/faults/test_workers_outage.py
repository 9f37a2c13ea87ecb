"""The background loops through an outage: a round the database was away for is logged once
per outage (``workers.round_deferred``, a warning, no traceback), the loops back off instead of
spinning, and they pick the work up again when the database returns — in the same process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from service.workers import DEFERRED_MAX_S, deferred_wait
from tests import backends
from tests.cut_proxy import CutProxy
from tests.faults.live import live_app

pytestmark = pytest.mark.postgres_only


def test_the_wait_between_deferred_rounds_doubles_up_to_a_ceiling() -> None:
    waits = [deferred_wait(0.05, n) for n in range(1, 10)]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8]
    assert waits[-1] == DEFERRED_MAX_S
    assert deferred_wait(3600, 1) == DEFERRED_MAX_S  # retention's hour is not waited out


@pytest.mark.usefixtures("json_logs")
async def test_the_loops_log_an_outage_once_and_resume_by_themselves(
    tmp_path: Path, proxy: CutProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    async with live_app(tmp_path, proxy.proxied_url(backends.CURRENT.url)) as live:
        await asyncio.sleep(0.3)  # every loop has run a round or two
        await proxy.cut()
        await asyncio.sleep(3.0)  # ~60 idle polls of 50 ms
        await proxy.restore()
        await asyncio.sleep(DEFERRED_MAX_S / 2)  # the longest wait the backoff reached
        response = await live.http.post(
            "/v1/tasks", json={"prompt": "a kite over dunes", "model": "nano-banana"}
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        await live.settle(timeout_s=15)
        assert task_id in live.delivered_tasks()

    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    deferred = [line["loop"] for line in lines if line["event"] == "workers.round_deferred"]
    resumed = [line["loop"] for line in lines if line["event"] == "workers.round_resumed"]
    assert sorted(set(deferred)) == sorted(deferred), "an outage is logged once per loop"
    assert {"submitter", "reconciler", "delivery"} <= set(deferred)
    assert set(deferred) <= set(resumed)
    assert all(line["level"] == "warning" for line in lines
               if line["event"] == "workers.round_deferred")  # fmt: skip
    crashed = [line for line in lines if line["level"] == "error" and "exception" in line]
    assert crashed == []
