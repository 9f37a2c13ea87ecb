"""``POST /v1/callbacks/{id}/replay`` goes through the ledger again: a callback that was applied
changes nothing the second time (task, balance, events, deliveries), and a Kie callback that was
kept ``pending`` because its ``recordInfo`` confirmation failed is applied by its replay once
Kie answers — exactly once.

Kie is a small fake ``recordInfo`` server on loopback that fails with 500 until told otherwise.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.usecases import create_account, create_api_key
from tests import image_server as images
from tests.conftest import EXTERNAL_PROVIDERS, Caller, settings_env
from tests.servers import serve_app
from tests.upstream.test_callback_log import KIE_ID, deliver_kie, kie_task, page, replay
from tests.upstream.test_callback_rejections import Harness, encode, envelope, success_body

RESULT_URL = images.shared().url("kie-result-0")  # a real image on the test image host
DELIVERIES = "SELECT COUNT(*) FROM deliveries"


@dataclass
class FakeRecordInfo:
    """Kie's ``GET /api/v1/jobs/recordInfo``: 500 while ``down``, else the task's record."""

    down: bool = True
    state: str = "success"
    calls: list[str] = field(default_factory=list)

    async def record(self, request: Request) -> Response:
        self.calls.append(request.query_params.get("taskId", ""))
        if self.down:
            return JSONResponse({"code": 500, "msg": "internal error"}, status_code=500)
        data: dict[str, Any] = {"taskId": KIE_ID, "state": self.state, "model": "nano-banana"}
        if self.state == "success":
            data["resultJson"] = json.dumps({"resultUrls": [RESULT_URL]})
        else:
            data.update(failCode="500", failMsg="upstream exploded")
        return JSONResponse({"code": 200, "msg": "success", "data": data})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/jobs/recordInfo", self.record, methods=["GET"])])


@dataclass
class Kie:
    h: Harness
    fake: FakeRecordInfo
    who: Caller

    async def deliveries(self) -> int:
        return await self.h.count(DELIVERIES)


@pytest.fixture
async def kie(tmp_path: Path) -> AsyncIterator[Kie]:
    fake = FakeRecordInfo()
    async with serve_app(fake.app()) as base:
        env = {**EXTERNAL_PROVIDERS, "TASKHOOK_KIE_BASE_URL": base}
        app = create_app(load_settings(settings_env(tmp_path, **env)), run_workers=False)
        async with app.router.lifespan_context(app):
            store = app.state.services.store
            account = await create_account(store, system_clock, "acme", 1000)
            _, raw = await create_api_key(store, system_clock, account.id)
            who = Caller(account.id, raw)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                endpoint = await client.post(
                    "/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=who.headers
                )
                assert endpoint.status_code == 201, endpoint.text
                yield Kie(Harness(app, client, store), fake, who)


async def pending_callback(kie: Kie, state: str = "success") -> tuple[dict[str, Any], str]:
    task = await kie_task(kie.h, kie.who)
    response = await deliver_kie(kie.h, task["id"], encode(envelope(KIE_ID, state)))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "pending"
    assert kie.fake.calls == [KIE_ID]
    return task, response.json()["id"]


async def test_a_callback_kept_pending_is_applied_by_its_replay(kie: Kie) -> None:
    task, callback_id = await pending_callback(kie)
    before = await kie.h.snapshot(kie.who, task["id"])
    deliveries = await kie.deliveries()
    assert before.task["status"] == "submitted"

    kie.fake.down = False
    response = await replay(kie.h, kie.who, callback_id)

    assert response.status_code == 200, response.text
    replayed = response.json()
    assert (replayed["id"], replayed["outcome"]) == (callback_id, "applied")
    assert replayed["applied_at"] is not None
    assert await kie.h.settle() == 1
    done = await kie.h.get_task(kie.who, task["id"])
    assert done["status"] == "succeeded"
    assert [r["source_url"] for r in done["results"]] == [RESULT_URL]
    after = await kie.h.snapshot(kie.who, task["id"])
    assert after.events == before.events + 2  # task.running (held), task.succeeded
    assert await kie.deliveries() == deliveries + 2  # to the one endpoint
    [kept] = (await page(kie.h, kie.who, task_id=task["id"]))["data"]
    assert (kept["outcome"], kept["applied_at"]) == ("applied", replayed["applied_at"])

    again = await replay(kie.h, kie.who, callback_id)  # and only once

    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "applied"
    assert await kie.h.snapshot(kie.who, task["id"]) == after
    assert await kie.deliveries() == deliveries + 2


async def test_a_pending_failure_refunds_once_when_its_replay_is_confirmed(kie: Kie) -> None:
    task, callback_id = await pending_callback(kie, "fail")
    balance = await kie.h.balance(kie.who)
    kie.fake.down, kie.fake.state = False, "fail"

    for _ in range(2):
        response = await replay(kie.h, kie.who, callback_id)
        assert response.status_code == 200, response.text

    failed = await kie.h.get_task(kie.who, task["id"])
    assert failed["status"] == "failed"
    assert failed["refunded_credits"] == task["cost_credits"]
    assert len(await kie.h.refunds(kie.who, task["id"])) == 1
    assert await kie.h.balance(kie.who) == balance + task["cost_credits"]


async def test_a_replay_while_kie_is_still_down_leaves_it_pending(kie: Kie) -> None:
    task, callback_id = await pending_callback(kie)
    before = await kie.h.snapshot(kie.who, task["id"])

    response = await replay(kie.h, kie.who, callback_id)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "pending"
    assert kie.fake.calls == [KIE_ID, KIE_ID]
    assert await kie.h.snapshot(kie.who, task["id"]) == before


async def test_replaying_an_applied_callback_changes_nothing(kie: Kie) -> None:
    task = await kie.h.submitted_task(kie.who)  # the simulator: signed, no confirmation
    callback_id = (await kie.h.deliver(task["id"], success_body())).json()["id"]
    await kie.h.settle()
    before = await kie.h.snapshot(kie.who, task["id"])
    deliveries = await kie.deliveries()
    kept = (await page(kie.h, kie.who, task_id=task["id"]))["data"]
    assert before.task["status"] == "succeeded"

    response = await replay(kie.h, kie.who, callback_id)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    assert await kie.h.snapshot(kie.who, task["id"]) == before
    assert await kie.deliveries() == deliveries
    assert (await page(kie.h, kie.who, task_id=task["id"]))["data"] == kept
