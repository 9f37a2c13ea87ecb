"""Callbacks over real HTTP: order, Standard Webhooks signatures, and every prompt tag."""

from __future__ import annotations

import asyncio
import json
import time

from standardwebhooks.webhooks import Webhook

from tests.simulator.conftest import (
    LATENCY_MS,
    MODULE_LOOP,
    WEBHOOK_SECRET,
    Received,
    Receiver,
    StartSim,
)

pytestmark = MODULE_LOOP


def _verified(calls: list[Received]) -> None:
    for call in calls:
        Webhook(WEBHOOK_SECRET).verify(call.body, call.headers)
        assert call.headers["content-type"] == "application/json"
        assert call.headers["webhook-id"].startswith("msg_")


async def test_progress_then_completion_all_signed(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim()
    task_id = await sim.task_id("a lighthouse at dusk", receiver.url, seed=7)
    calls = await receiver.wait_for(2)
    _verified(calls)
    progress, done = calls
    assert progress.json["code"] == 200
    assert progress.data["state"] == "generating"
    assert 1 <= progress.data["progress"] <= 99
    assert progress.data["resultJson"] == ""
    assert done.json == {"code": 200, "msg": "success", "data": await sim.info(task_id)}
    assert done.data["taskId"] == task_id
    assert done.data["state"] == "success"
    assert done.data["costTime"] == LATENCY_MS
    assert json.loads(done.data["resultJson"])["resultUrls"] == [sim.image_url(task_id)]
    assert progress.headers["webhook-id"] != done.headers["webhook-id"]
    await asyncio.sleep(0.2)
    assert len(receiver.calls) == 2


async def test_progress_steps_rise(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(progress_steps=3)
    await sim.task_id("three steps", receiver.url)
    calls = await receiver.wait_for(4)
    _verified(calls)
    states = [call.data["state"] for call in calls]
    assert states == ["generating", "generating", "generating", "success"]
    percents = [call.data["progress"] for call in calls[:3]]
    assert percents == sorted(percents)
    assert all(1 <= p <= 99 for p in percents)
    assert len({call.headers["webhook-id"] for call in calls}) == 4


async def test_fail_tag(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(progress_steps=0)
    task_id = await sim.task_id("oops [sim:fail]", receiver.url)
    (done,) = await receiver.wait_for(1)
    _verified([done])
    assert done.json["code"] == 501
    assert done.json["msg"] == "Simulated failure"
    data = done.data
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"]) == ("500", "Simulated failure")
    assert data["resultJson"] == ""
    assert data["completeTime"] is not None
    assert (await sim.info(task_id))["state"] == "fail"


async def test_failure_rate_fails_untagged_tasks(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(progress_steps=0, failure_rate=1.0)
    await sim.task_id("no tag here", receiver.url)
    (done,) = await receiver.wait_for(1)
    assert done.data["state"] == "fail"


async def test_duplicate_tag_resends_the_same_message(
    start_sim: StartSim, receiver: Receiver
) -> None:
    sim = await start_sim()
    await sim.task_id("twice [sim:duplicate]", receiver.url)
    calls = await receiver.wait_for(3)
    _verified(calls)
    progress, first, second = calls
    assert progress.data["state"] == "generating"
    assert first.body == second.body
    assert first.data["state"] == "success"
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_reorder_tag_sends_completion_first(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim()
    await sim.task_id("backwards [sim:reorder]", receiver.url)
    calls = await receiver.wait_for(2)
    _verified(calls)
    assert [call.data["state"] for call in calls] == ["success", "generating"]


async def test_tags_combine_case_insensitively(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim()
    await sim.task_id("[SIM:Duplicate] both [Sim:REORDER]", receiver.url)
    calls = await receiver.wait_for(3)
    assert [call.data["state"] for call in calls] == ["success", "success", "generating"]


async def test_drop_tag_sends_nothing_but_record_info_tells_the_truth(
    start_sim: StartSim, receiver: Receiver
) -> None:
    sim = await start_sim()
    task_id = await sim.task_id("silent [sim:drop]", receiver.url)
    assert (await sim.info(task_id))["state"] in ("waiting", "generating")
    await asyncio.sleep(LATENCY_MS / 1000 + 0.5)
    assert receiver.calls == []
    data = await sim.info(task_id)
    assert data["state"] == "success"
    assert json.loads(data["resultJson"])["resultUrls"]


async def test_delay_tag_holds_the_completion(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim(progress_steps=0)
    started = time.monotonic()
    task_id = await sim.task_id("slow [sim:delay=0.5]", receiver.url)
    await asyncio.sleep(0.3)
    assert receiver.calls == []
    assert (await sim.info(task_id))["state"] == "generating"
    (done,) = await receiver.wait_for(1)
    assert done.at - started >= 0.5
    assert done.data["costTime"] == 500


async def test_failed_delivery_is_retried_with_the_same_id(
    start_sim: StartSim, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    sim = await start_sim(progress_steps=0)
    await sim.task_id("flaky receiver", receiver.url)
    calls = await receiver.wait_for(3)
    _verified(calls)
    assert len({call.headers["webhook-id"] for call in calls}) == 1
    assert len({call.body for call in calls}) == 1
    assert calls[1].at - calls[0].at >= 0.2
    assert calls[2].at - calls[1].at >= 0.5


async def test_attempts_are_bounded(start_sim: StartSim, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    sim = await start_sim(progress_steps=0, callback_attempts=2, latency_ms=0)
    await sim.task_id("always failing receiver", receiver.url)
    await receiver.wait_for(2)
    await asyncio.sleep(0.6)  # a third attempt would have come 0.5 s after the second
    assert len(receiver.calls) == 2


async def test_unreachable_callback_does_not_break_the_task(start_sim: StartSim) -> None:
    sim = await start_sim(progress_steps=0, callback_attempts=1)
    task_id = await sim.task_id("nobody home", "http://127.0.0.1:9/hook")
    assert (await sim.until_done(task_id))["state"] == "success"
    await asyncio.sleep(0.1)
    assert sim.runtime.pending_callbacks == 0


async def test_aclose_cancels_pending_callbacks(start_sim: StartSim, receiver: Receiver) -> None:
    sim = await start_sim()
    await sim.task_id("later [sim:delay=5]", receiver.url)
    assert sim.runtime.pending_callbacks == 1
    await sim.runtime.aclose()
    assert sim.runtime.pending_callbacks == 0
    assert receiver.calls == []
