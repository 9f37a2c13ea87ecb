"""What the simulator will not do: call back where deliveries may not go, or keep an unbounded
number of callbacks (and their timers) pending."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket

import pytest

from service.delivery.ssrf import TargetPolicy
from tests.simulator.conftest import MODULE_LOOP, Receiver, StartSim

pytestmark = MODULE_LOOP

CREATE = "/api/v1/jobs/createTask"
PRODUCTION = TargetPolicy()


def _names_a_private_address(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return bool(addresses) and not any(PRODUCTION.address_allowed(a) for a in addresses)


def _events(err: str, prefix: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if str(line["event"]).startswith(prefix)]


@pytest.mark.usefixtures("json_logs")
async def test_a_literal_loopback_target_is_refused_not_retried(
    start_sim: StartSim, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await start_sim(callback_policy=PRODUCTION, callback_attempts=3)
    task_id = await sim.task_id("a red fox", receiver.url)
    await asyncio.sleep(0.4)
    assert receiver.calls == []
    assert sim.runtime.pending_callbacks == 0
    refused = _events(capsys.readouterr().err, "simulator.callback")
    assert [(r["event"], r["provider_task_id"]) for r in refused] == [
        ("simulator.callback_refused", task_id)
    ]
    assert "127.0.0.1" in str(refused[0]["reason"])
    assert receiver.url not in json.dumps(refused)


@pytest.mark.usefixtures("json_logs")
async def test_a_name_is_judged_by_the_address_it_resolves_to(
    start_sim: StartSim, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """DNS rebinding: the host's own name passes the textual check and resolves (here, through
    /etc/hosts) to loopback or a private address; the guarded connector drops it."""
    name = socket.gethostname()
    if not _names_a_private_address(name):
        pytest.skip(f"this host's name {name!r} does not resolve to a non-public address")
    sim = await start_sim(callback_policy=PRODUCTION)
    port = receiver.url.split(":")[2].split("/")[0]
    target = receiver.url.replace(f"127.0.0.1:{port}", f"{name}:{port}")
    await sim.task_id("a red fox", target)
    await asyncio.sleep(0.4)
    assert receiver.calls == []
    refused = _events(capsys.readouterr().err, "simulator.callback")
    assert [r["event"] for r in refused] == ["simulator.callback_refused"]


async def test_the_delivery_policy_lets_allowed_networks_through(
    start_sim: StartSim, receiver: Receiver
) -> None:
    sim = await start_sim(callback_policy=TargetPolicy.from_settings(["127.0.0.0/8"]))
    await sim.task_id("a red fox", receiver.url)
    calls = await receiver.wait_for(2)
    assert [call.data["state"] for call in calls] == ["generating", "success"]


async def test_pending_callbacks_are_bounded(start_sim: StartSim, receiver: Receiver) -> None:
    """Each pending job holds one timer at a time, so capping the jobs with callbacks still to
    send caps the timers too, however long ``[sim:delay=S]`` asks them to wait."""
    sim = await start_sim(max_pending_callbacks=2)
    slow = {"model": "m", "callBackUrl": receiver.url, "input": {"prompt": "[sim:delay=600]"}}
    for _ in range(2):
        assert (await sim.http.post(CREATE, json=slow)).status_code == 200
    full = await sim.http.post(CREATE, json=slow)
    assert full.status_code == 429
    assert full.json()["code"] == 429
    assert int(full.headers["retry-after"]) >= 1
    assert sim.runtime.pending_callbacks == 2
    # jobs that will never call back hold no timer and are still taken
    for body in (
        {"model": "m", "input": {"prompt": "[sim:delay=600]"}},
        {"model": "m", "callBackUrl": receiver.url, "input": {"prompt": "[sim:drop]"}},
    ):
        assert (await sim.http.post(CREATE, json=body)).status_code == 200
    assert sim.runtime.pending_callbacks == 2


async def test_a_slot_frees_when_a_job_has_called_back(
    start_sim: StartSim, receiver: Receiver
) -> None:
    sim = await start_sim(max_pending_callbacks=1, progress_steps=0)
    await sim.task_id("first", receiver.url)
    await receiver.wait_for(1)
    for _ in range(50):
        if sim.runtime.pending_callbacks == 0:
            break
        await asyncio.sleep(0.01)
    await sim.task_id("second", receiver.url)
    await receiver.wait_for(2)
