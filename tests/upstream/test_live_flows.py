"""The whole upstream loop over real loopback HTTP: the app served by uvicorn with its workers,
the built-in simulator calling back to it, and the task API read the way a client would."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.core.imagesize import dimensions
from service.settings import load_settings
from service.usecases import create_account, create_api_key
from tests.backends import reader
from tests.conftest import settings_env
from tests.servers import bind_loopback, serve_app

FAST = {
    "TASKHOOK__SIMULATOR__LATENCY_MS": "150",
    "TASKHOOK__UPSTREAM__CALLBACK_DEADLINE_SECONDS": "1",
    "TASKHOOK__UPSTREAM__POLL_INTERVAL_SECONDS": "1",
    "TASKHOOK__UPSTREAM__GIVE_UP_SECONDS": "3",
    "TASKHOOK__UPSTREAM__SUBMIT_BACKOFF_BASE_MS": "100",
    "TASKHOOK__UPSTREAM__SUBMIT_BACKOFF_MAX_MS": "400",
    "TASKHOOK__WORKERS__IDLE_POLL_MS": "50",
}
TERMINAL = ("succeeded", "failed")


@dataclass
class Live:
    http: httpx.AsyncClient
    app: Starlette

    async def submit(self, prompt: str, **params: Any) -> dict[str, Any]:
        body = {"prompt": prompt, "model": "nano-banana", **params}
        response = await self.http.post("/v1/tasks", json=body)
        assert response.status_code == 202, response.text
        task: dict[str, Any] = response.json()
        return task

    async def settle(self, task_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Poll our own API until the task is terminal."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            task: dict[str, Any] = (await self.http.get(f"/v1/tasks/{task_id}")).json()
            if task["status"] in TERMINAL:
                return task
            assert asyncio.get_running_loop().time() < deadline, f"stuck: {task}"
            await asyncio.sleep(0.05)

    async def timeline(self, task_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = (
            await self.http.get(f"/v1/tasks/{task_id}/timeline")
        ).json()["data"]
        return entries

    async def ledger(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = (await self.http.get("/v1/account/ledger")).json()["data"]
        return entries

    async def event_types(self, task_id: str) -> list[str]:
        async with reader(self.app.state.services.store).execute(
            "SELECT type FROM events WHERE task_id = ? ORDER BY id", (task_id,)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    settings = load_settings(settings_env(tmp_path, PORT=str(port), **FAST))
    app = create_app(settings)
    async with serve_app(app, sock=sock, lifespan="on") as base:
        store = app.state.services.store
        account = await create_account(store, system_clock, "live", 1000)
        _, key = await create_api_key(store, system_clock, account.id)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            yield Live(http, app)


async def test_a_task_goes_all_the_way_and_its_image_is_real(live: Live) -> None:
    task = await live.submit(
        "a paper boat on a pond", aspect_ratio="16:9", output_format="jpeg", seed=7
    )
    done = await live.settle(task["id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == 100
    assert done["provider_task_id"].startswith("sim_")
    [result] = done["results"]
    assert (result["width"], result["height"]) == dimensions("16:9", "1k")
    assert "/assets/ast_" in result["url"]
    assert "/simulator/" in result["source_url"]
    image = await live.http.get(result["url"])
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content == (await live.http.get(result["source_url"])).content
    picture = Image.open(io.BytesIO(image.content))
    assert picture.format == "JPEG"
    assert picture.size == dimensions("16:9", "1k")

    applied = [e for e in await live.timeline(task["id"]) if e["outcome"] == "applied"]
    # the provider's success holds the task (running, 99) until the mirror has kept the image
    assert [e["status"] for e in applied] == [
        "queued", "submitted", "running", "running", "succeeded",
    ]  # fmt: skip
    assert [e["sequence"] for e in applied] == [1, 2, 3, 4, 5]
    assert await live.event_types(task["id"]) == [
        "task.queued", "task.submitted", "task.running", "task.succeeded",
    ]  # fmt: skip
    kinds = [(e["kind"], e["source"]) for e in applied]
    assert kinds[1:] == [("state_change", "submitter"), ("callback", "callback"),
                         ("callback", "callback"), ("state_change", "mirror")]  # fmt: skip
    assert (await live.http.get("/v1/account")).json()["balance_credits"] == 1000 - 15


async def test_a_failed_task_is_refunded_exactly_once(live: Live) -> None:
    task = await live.submit("a lighthouse [sim:fail]")
    done = await live.settle(task["id"])
    assert done["status"] == "failed"
    assert done["failure"]["code"] == "provider_failed"
    assert done["refunded_credits"] == done["cost_credits"] == 15
    refunds = [e for e in await live.ledger() if e["kind"] == "refund"]
    assert [(e["delta"], e["task_id"]) for e in refunds] == [(15, task["id"])]
    assert (await live.http.get("/v1/account")).json()["balance_credits"] == 1000
    assert (await live.event_types(task["id"]))[-1] == "task.failed"


@pytest.mark.parametrize("tag", ["[sim:duplicate]", "[sim:reorder]"])
async def test_duplicates_and_reordering_leave_the_clean_ledger(live: Live, tag: str) -> None:
    clean = await live.settle((await live.submit("a fox"))["id"])
    messy_id = (await live.submit(f"a fox {tag}"))["id"]
    messy = await live.settle(messy_id)
    await asyncio.sleep(0.5)  # let any straggling duplicate or late progress arrive
    messy = (await live.http.get(f"/v1/tasks/{messy_id}")).json()
    for field in ("status", "progress", "cost_credits", "refunded_credits"):
        assert messy[field] == clean[field], field
    types = await live.event_types(messy_id)
    assert len(types) == len(set(types)), types  # no event twice
    outcomes = {e["outcome"] for e in await live.timeline(messy_id)}
    assert outcomes & {"duplicate", "stale"}, "the extra callback should be visible"
    callbacks = (await live.http.get("/v1/callbacks", params={"task_id": messy_id})).json()
    assert {c["verdict"] for c in callbacks["data"]} == {"verified"}


async def test_a_dropped_callback_is_completed_by_the_reconciler(live: Live) -> None:
    task = await live.submit("a bridge at night [sim:drop]")
    done = await live.settle(task["id"])
    assert done["status"] == "succeeded"
    polls = [e for e in await live.timeline(task["id"]) if e["kind"] == "poll"]
    assert polls
    assert polls[-1]["outcome"] == "applied"
    assert polls[-1]["status"] == "running"  # held: the mirror loop then makes it succeed
    callbacks = (await live.http.get("/v1/callbacks", params={"task_id": task["id"]})).json()
    assert callbacks["data"] == []


async def test_a_busy_provider_is_retried_until_it_takes_the_task(live: Live) -> None:
    task = await live.submit("a windmill [sim:busy]")
    done = await live.settle(task["id"])
    assert done["status"] == "succeeded"
    retries = [e for e in await live.timeline(task["id"]) if "retry in" in e["detail"]]
    assert len(retries) == 2
    assert all(e["source"] == "submitter" for e in retries)
    assert done["refunded_credits"] == 0


async def test_a_task_silent_past_the_give_up_time_fails_and_is_refunded(live: Live) -> None:
    task = await live.submit("a glacier [sim:drop] [sim:delay=60]")
    done = await live.settle(task["id"], timeout_s=15)
    assert done["status"] == "failed"
    assert done["failure"]["code"] == "provider_timeout"
    assert done["refunded_credits"] == 15
    sources = {e["source"] for e in await live.timeline(task["id"])}
    assert {"poll", "reconciler"} <= sources
