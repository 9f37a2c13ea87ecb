"""Real decisions of both stages (allowed, flagged, failed) match the OpenAPI document's
``ModerationDecision`` and the listing's documented responses."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.test_openapi import check_response, component, conforms
from tests.conftest import Caller
from tests.moderation.fake_api import FakeModerationApi

URL = "/v1/moderation/decisions"


async def test_real_decisions_match_the_schema(
    client: httpx.AsyncClient, caller: Caller, fake_api: FakeModerationApi
) -> None:
    spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    body = {"prompt": "a red fox", "model": "nano-banana"}
    await client.post("/v1/tasks", json=body, headers=caller.headers)
    fake_api.answer, fake_api.flags = "flag", ("illicit", "violence/graphic")
    await client.post("/v1/tasks", json=body, headers=caller.headers)
    fake_api.answer, fake_api.status = "status", 502
    await client.post("/v1/tasks", json=body, headers=caller.headers)
    await client.post("/v1/tasks", json={**body, "prompt": "a nude fox"}, headers=caller.headers)

    listed = await client.get(URL, headers=caller.headers)
    refused = await client.get(URL, params={"verdict": "maybe"}, headers=caller.headers)

    check_response(spec, listed, URL, "get")
    check_response(spec, refused, URL, "get")
    decisions = listed.json()["data"]
    assert {(d["stage"], d["verdict"]) for d in decisions} == {
        ("rules", "allowed"), ("external", "allowed"), ("external", "blocked"), ("rules", "blocked")
    }  # fmt: skip
    assert {d["error"] for d in decisions} == {None, "http_502"}
    schema = component(spec, "ModerationDecision")
    assert set(decisions[0]) == set(schema["properties"]) == set(schema["required"])
    assert not conforms(spec, {**decisions[0], "stage": "human"}, schema)
    assert not conforms(spec, {**decisions[0], "category": "nsfw"}, schema)
