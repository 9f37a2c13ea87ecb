"""Two ``web`` processes on one PostgreSQL database (two apps, two pools) taking submissions at
once: one Idempotency-Key makes one task and one charge whichever process each request reached,
and however many submissions race, the balance never goes below zero. On either backend
``/metrics`` counts the same whichever app is scraped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.app import create_app
from service.settings import Settings
from tests.conftest import Caller, MakeCaller
from tests.ops.conftest import parse

BODY = {"prompt": "a paper boat on a misty pond", "model": "nano-banana"}


@pytest.fixture
async def second(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another process's app on the same database (its own pool, its own registry)."""
    other: Starlette = create_app(settings, run_workers=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def submit(client: httpx.AsyncClient, who: Caller, key: str | None) -> httpx.Response:
    headers = dict(who.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/tasks", json=BODY, headers=headers)


async def ledger(client: httpx.AsyncClient, who: Caller) -> list[dict[str, Any]]:
    response = await client.get("/v1/account/ledger", headers=who.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@pytest.mark.postgres_only
async def test_one_idempotency_key_sent_to_two_processes_at_once_makes_one_task(
    client: httpx.AsyncClient, second: httpx.AsyncClient, caller: Caller
) -> None:
    sends = [submit(c, caller, "order-1001") for c in (client, second) * 8]
    answers = await asyncio.gather(*sends)
    assert {r.status_code for r in answers} <= {200, 202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 15
    charges = [e for e in await ledger(second, caller) if e["kind"] == "charge"]
    assert len(charges) == 1


@pytest.mark.postgres_only
async def test_submissions_racing_through_two_processes_never_overdraw(
    client: httpx.AsyncClient, second: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    first = await make_caller(credits=1000)
    probe = await submit(client, first, None)
    assert probe.status_code == 202, probe.text
    cost = int(probe.json()["cost_credits"])
    poor = await make_caller(credits=3 * cost + cost // 2, name="poor")
    answers = await asyncio.gather(*(submit(c, poor, None) for c in (client, second) * 10))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 3 + [402] * 17, [r.text for r in answers if r.status_code >= 500]
    account = await second.get("/v1/account", headers=poor.headers)
    assert account.json()["balance_credits"] == cost // 2


async def test_metrics_agree_whichever_process_is_scraped(
    client: httpx.AsyncClient, second: httpx.AsyncClient, caller: Caller
) -> None:
    assert (await submit(client, caller, None)).status_code == 202
    assert (await submit(second, caller, None)).status_code == 202
    one = parse((await client.get("/metrics")).text)
    two = parse((await second.get("/metrics")).text)
    shared = {k: v for k, v in one.items() if not k[0].startswith("taskhook_delivery_latency")}
    assert shared == {k: v for k, v in two.items() if k in shared}
    assert one[("taskhook_tasks", (("status", "queued"),))] == 2
