"""The Kie.ai-shaped API over real HTTP: createTask, recordInfo, auth, validation, [sim:busy]."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.providers.simulator import SimulatorConfig, create_simulator_app
from tests.simulator.conftest import (
    LATENCY_MS,
    MODULE_LOOP,
    WEBHOOK_SECRET,
    Receiver,
    Sim,
    StartSim,
)

CREATE = "/api/v1/jobs/createTask"
INFO = "/api/v1/jobs/recordInfo"

pytestmark = MODULE_LOOP


async def test_create_answers_a_task_id(sim: Sim) -> None:
    payload = await sim.create("a red fox")
    assert payload["code"] == 200
    assert payload["msg"] == "success"
    assert payload["data"]["taskId"].startswith("sim_")


async def test_record_info_progresses_to_success(start_sim: StartSim) -> None:
    sim = await start_sim(latency_ms=300)
    body = {"model": "nano-banana", "input": {"prompt": "a red fox", "resolution": "2K"}}
    response = await sim.http.post(CREATE, json=body)
    task_id = response.json()["data"]["taskId"]
    early = await sim.info(task_id)
    assert early["state"] in ("waiting", "generating")
    assert early["resultJson"] == ""
    assert early["completeTime"] is None
    assert early["costTime"] is None
    assert json.loads(early["param"]) == body
    await asyncio.sleep(0.12)
    middle = await sim.info(task_id)
    assert middle["state"] == "generating"
    assert 1 <= middle["progress"] <= 99
    await asyncio.sleep(0.3)
    done = await sim.info(task_id)
    assert done["state"] == "success"
    assert done["progress"] == 100
    assert done["costTime"] == 300
    assert done["completeTime"] == done["createTime"] + 300
    assert done["model"] == "nano-banana"
    assert (done["failCode"], done["failMsg"]) == ("", "")
    urls = json.loads(done["resultJson"])["resultUrls"]
    assert urls == [sim.image_url(task_id)]


async def test_unknown_task_is_404(sim: Sim) -> None:
    response = await sim.http.get(INFO, params={"taskId": "sim_nope"})
    assert response.status_code == 404
    assert response.json() == {"code": 404, "msg": "task not found"}


async def test_missing_task_id_is_422(sim: Sim) -> None:
    response = await sim.http.get(INFO)
    assert response.status_code == 422
    assert response.json()["code"] == 422


async def test_api_key_is_required_when_configured(start_sim: StartSim) -> None:
    sim = await start_sim(api_key="sk-sim-123")
    body = {"model": "m", "input": {"prompt": "p"}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sk-sim-123"}):
        response = await sim.http.post(CREATE, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == 401
        info = await sim.http.get(INFO, params={"taskId": "x"}, headers=headers)
        assert info.status_code == 401
    good = {"Authorization": "Bearer sk-sim-123"}
    response = await sim.http.post(CREATE, json=body, headers=good)
    assert response.status_code == 200
    task_id = response.json()["data"]["taskId"]
    info = await sim.http.get(INFO, params={"taskId": task_id}, headers=good)
    assert info.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"input": {"prompt": "p"}},
        {"model": "", "input": {"prompt": "p"}},
        {"model": "m"},
        {"model": "m", "input": "p"},
        {"model": "m", "input": {}},
        {"model": "m", "input": {"prompt": "   "}},
        {"model": "m", "input": {"prompt": 5}},
        {"model": "m", "input": {"prompt": "p", "aspect_ratio": "7:5"}},
        {"model": "m", "input": {"prompt": "p", "resolution": "8k"}},
        {"model": "m", "input": {"prompt": "p", "output_format": "gif"}},
        {"model": "m", "input": {"prompt": "p", "num_images": 0}},
        {"model": "m", "input": {"prompt": "p", "num_images": 5}},
        {"model": "m", "input": {"prompt": "p", "num_images": True}},
        {"model": "m", "input": {"prompt": "p", "seed": -1}},
        {"model": "m", "input": {"prompt": "p", "seed": 1.5}},
        {"model": "m", "input": {"prompt": "p", "image_urls": "http://x/a.png"}},
        {"model": "m", "input": {"prompt": "p", "image_urls": ["file:///etc/passwd"]}},
        {"model": "m", "callBackUrl": "ftp://example.com/hook", "input": {"prompt": "p"}},
    ],
)
async def test_bad_bodies_are_422(sim: Sim, body: Any) -> None:
    response = await sim.http.post(CREATE, json=body)
    assert response.status_code == 422, body
    payload = response.json()
    assert payload["code"] == 422
    assert payload["msg"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
async def test_unparseable_bodies_are_400(sim: Sim, raw: bytes) -> None:
    response = await sim.http.post(CREATE, content=raw)
    assert response.status_code == 400
    assert response.json()["code"] == 400


async def test_values_are_normalised(sim: Sim) -> None:
    task_id = await sim.task_id("p", resolution="4K", output_format="JPEG", num_images=2)
    data = await sim.until_done(task_id)
    assert json.loads(data["resultJson"])["resultUrls"] == [
        sim.image_url(task_id, i, "jpeg") for i in range(2)
    ]


async def test_busy_tag_answers_429_twice_per_request(sim: Sim, receiver: Receiver) -> None:
    def body(n: int) -> dict[str, Any]:
        return {
            "model": "m",
            "callBackUrl": f"{receiver.url}?task={n}",
            "input": {"prompt": "crowded [sim:busy]"},
        }

    statuses = []
    for _ in range(3):
        response = await sim.http.post(CREATE, json=body(1))
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            assert response.json()["code"] == 429
    assert statuses == [429, 429, 200]
    # another task (another callback URL) gets its own two 429s
    other = [(await sim.http.post(CREATE, json=body(2))).status_code for _ in range(3)]
    assert other == [429, 429, 200]
    assert (await sim.http.post(CREATE, json=body(1))).status_code == 200


async def test_standalone_lifespan_closes_the_simulator(receiver: Receiver) -> None:
    config = SimulatorConfig(
        public_url="http://sim.test", webhook_secret=WEBHOOK_SECRET, latency_ms=LATENCY_MS
    )
    app: Starlette = create_simulator_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
            body = {"model": "m", "callBackUrl": receiver.url, "input": {"prompt": "[sim:delay=9]"}}
            assert (await client.post(CREATE, json=body)).status_code == 200
            assert app.state.simulator.pending_callbacks == 1
    assert app.state.simulator.pending_callbacks == 0
    assert receiver.calls == []


async def test_record_info_never_shows_the_callback_url(sim: Sim, receiver: Receiver) -> None:
    """The URL carries taskhook's callback token; nothing reads it back from ``param``."""
    url = f"{receiver.url}?token=eyJ0IjoxfQ.c2VjcmV0"
    body = {"model": "nano-banana", "callBackUrl": url, "input": {"prompt": "a red fox"}}
    response = await sim.http.post(CREATE, json=body)
    task_id = response.json()["data"]["taskId"]
    done = await sim.until_done(task_id)
    calls = await receiver.wait_for(2)
    assert json.loads(done["param"]) == {"model": "nano-banana", "input": {"prompt": "a red fox"}}
    assert "c2VjcmV0" not in json.dumps(done)
    assert all("c2VjcmV0" not in call.body.decode() for call in calls)


async def test_image_urls_do_not_carry_the_task_id(sim: Sim) -> None:
    """Whoever is shown an image must not learn the id ``recordInfo`` takes."""
    task_id = await sim.task_id("a quiet lake", num_images=2)
    urls = json.loads((await sim.until_done(task_id))["resultJson"])["resultUrls"]
    assert len(urls) == 2
    assert all(task_id not in url and task_id.removeprefix("sim_") not in url for url in urls)
    for url in urls:
        assert (await sim.http.get(url)).status_code == 200
    assert (await sim.http.get(f"/images/{task_id}/0.png")).status_code == 404
