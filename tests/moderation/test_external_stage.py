"""The second moderation stage over real HTTP: submits through the app (ASGI), the app calling
the loopback fake of an OpenAI-compatible moderation API. Flagged, not flagged, a 5xx, a timeout,
garbage, no server at all; ``on_error`` block and allow; what is charged and what is kept."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from service.app import moderation_client
from service.core.pagination import PageRequest
from service.moderation.external import ExternalModeration, ExternalVerdict
from service.settings import Settings
from service.store.base import DecisionFilter, ModerationDecision
from service.store.sqlite import SqliteStore
from tests.backends import reader
from tests.conftest import Caller, MakeCaller
from tests.moderation.fake_api import API_KEY, PATH, FakeModerationApi
from tests.servers import bind_loopback

PRICE = 23  # nano-banana at 2k: what an accepted submit charges (see config/pricing.toml)


def task(prompt: str) -> dict[str, Any]:
    return {"prompt": prompt, "model": "nano-banana", "resolution": "2k"}


async def decisions(store: SqliteStore, account_id: str) -> list[ModerationDecision]:
    """Oldest first: the order the stages ran in."""
    found = await store.list_moderation_decisions(DecisionFilter(account_id), PageRequest(100))
    return sorted(found, key=lambda d: (d.created_at, d.stage != "rules"))


async def count(store: SqliteStore, table: str) -> int:
    async with reader(store).execute(f"SELECT COUNT(*) FROM {table}") as cursor:  # noqa: S608
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def balance(client: httpx.AsyncClient, who: Caller) -> int:
    value: int = (await client.get("/v1/account", headers=who.headers)).json()["balance_credits"]
    return value


async def assert_blocked_like_the_rules(
    client: httpx.AsyncClient, who: Caller, store: SqliteStore, response: httpx.Response
) -> None:
    """The same neutral 422 a rules block answers, nothing charged, no task."""
    by_rules = await client.post("/v1/tasks", json=task("a nude portrait"), headers=who.headers)
    assert by_rules.status_code == 422
    assert response.status_code == 422, response.text
    assert response.content == by_rules.content
    assert response.json()["error"]["code"] == "prompt_blocked"
    assert await balance(client, who) == 1000
    assert await count(store, "tasks") == await count(store, "credit_entries") - 1 == 0


async def test_a_clean_prompt_is_accepted_and_both_stages_decisions_are_kept(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, fake_api: FakeModerationApi
) -> None:
    response = await client.post("/v1/tasks", json=task("a red fox"), headers=caller.headers)

    assert response.status_code == 202, response.text
    assert await balance(client, caller) == 1000 - PRICE
    [sent] = fake_api.received
    assert sent.body == {"input": "a red fox", "model": "omni-moderation-latest"}
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    rules, external = await decisions(store, caller.account_id)
    assert (rules.stage, rules.verdict, rules.rule_id, rules.category) == (
        "rules", "allowed", None, None
    )  # fmt: skip
    assert (external.stage, external.verdict, external.rule_id, external.category) == (
        "external", "allowed", None, None
    )  # fmt: skip
    assert external.error is None
    assert rules.prompt_sha256 == external.prompt_sha256 != "a red fox"


async def test_a_flagged_prompt_is_blocked_neutrally_and_charges_nothing(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, fake_api: FakeModerationApi
) -> None:
    fake_api.answer, fake_api.flags = "flag", ("violence/graphic", "sexual")
    response = await client.post("/v1/tasks", json=task("a portrait"), headers=caller.headers)

    await assert_blocked_like_the_rules(client, caller, store, response)
    for leak in ("sexual", "violence", "graphic", "flag", "external"):
        assert leak not in response.text
    ledger = (await client.get("/v1/account/ledger", headers=caller.headers)).json()["data"]
    assert [e["kind"] for e in ledger] == ["grant"]
    kept = await decisions(store, caller.account_id)
    rules, external = kept[0], kept[1]  # then the rules' block of the comparison prompt
    assert (rules.stage, rules.verdict) == ("rules", "allowed")
    assert (external.stage, external.verdict) == ("external", "blocked")
    assert external.rule_id == "sexual,violence/graphic"
    assert external.category == "sexual"  # the most severe of the two
    assert external.error is None


@pytest.mark.parametrize(
    ("flagged", "category"),
    [
        ("violence,sexual/minors", "sexual_minors"),
        ("sexual", "sexual"),
        ("violence", "violence"),
        ("self-harm/intent", "abuse"),
        ("illicit/violent,harassment", "illegal_activity"),
        ("hate/threatening", "abuse"),
        ("something-new", "abuse"),  # a category the API added since: still a block
    ],
)
async def test_flagged_categories_map_to_taskhook_categories(
    client: httpx.AsyncClient,
    caller: Caller,
    store: SqliteStore,
    fake_api: FakeModerationApi,
    flagged: str,
    category: str,
) -> None:
    fake_api.answer, fake_api.flags = "flag", tuple(flagged.split(","))
    response = await client.post("/v1/tasks", json=task("a portrait"), headers=caller.headers)

    assert response.status_code == 422
    external = (await decisions(store, caller.account_id))[-1]
    assert external.rule_id == ",".join(sorted(flagged.split(",")))
    assert external.category == category


FAILURES = [
    ("status", 500, "http_500"),
    ("status", 503, "http_503"),
    ("status", 429, "http_429"),
    ("status", 401, "http_401"),
    ("slow", 0, "timeout"),
    ("garbage", 0, "bad_response"),
    ("shapeless", 0, "bad_response"),
    ("redirect", 0, "http_307"),
]


@pytest.mark.parametrize(("answer", "status", "error"), FAILURES)
async def test_on_error_block_refuses_when_the_api_fails(
    client: httpx.AsyncClient,
    caller: Caller,
    store: SqliteStore,
    fake_api: FakeModerationApi,
    answer: str,
    status: int,
    error: str,
) -> None:
    fake_api.answer, fake_api.status = answer, status
    response = await client.post("/v1/tasks", json=task("a red fox"), headers=caller.headers)

    await assert_blocked_like_the_rules(client, caller, store, response)
    external = (await decisions(store, caller.account_id))[1]
    assert (external.stage, external.verdict) == ("external", "blocked")
    assert (external.error, external.rule_id, external.category) == (error, None, None)


@pytest.mark.parametrize("on_error", ["allow"])
@pytest.mark.parametrize(("answer", "status", "error"), FAILURES)
async def test_on_error_allow_accepts_when_the_api_fails(
    client: httpx.AsyncClient,
    caller: Caller,
    store: SqliteStore,
    fake_api: FakeModerationApi,
    answer: str,
    status: int,
    error: str,
) -> None:
    fake_api.answer, fake_api.status = answer, status
    response = await client.post("/v1/tasks", json=task("a red fox"), headers=caller.headers)

    assert response.status_code == 202, response.text
    assert await balance(client, caller) == 1000 - PRICE
    rules, external = await decisions(store, caller.account_id)
    assert (rules.verdict, external.verdict, external.error) == ("allowed", "allowed", error)


@pytest.mark.parametrize("on_error", ["allow"])
async def test_on_error_allow_still_blocks_what_the_api_flags(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, fake_api: FakeModerationApi
) -> None:
    fake_api.answer, fake_api.flags = "flag", ("hate",)
    response = await client.post("/v1/tasks", json=task("a portrait"), headers=caller.headers)
    await assert_blocked_like_the_rules(client, caller, store, response)


async def test_a_redirect_is_not_followed(
    client: httpx.AsyncClient, caller: Caller, fake_api: FakeModerationApi
) -> None:
    fake_api.answer = "redirect"
    await client.post("/v1/tasks", json=task("a red fox"), headers=caller.headers)
    assert len(fake_api.received) == 1  # nothing reached /elsewhere, the key least of all


async def test_what_the_rules_block_never_reaches_the_api(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, fake_api: FakeModerationApi
) -> None:
    response = await client.post("/v1/tasks", json=task("a nude portrait"), headers=caller.headers)

    assert response.status_code == 422
    assert fake_api.received == []
    [only] = await decisions(store, caller.account_id)
    assert (only.stage, only.verdict, only.rule_id) == ("rules", "blocked", "sexual-explicit")


async def test_an_idempotent_replay_is_not_screened_again(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, fake_api: FakeModerationApi
) -> None:
    headers = {**caller.headers, "Idempotency-Key": "once"}
    first = await client.post("/v1/tasks", json=task("a red fox"), headers=headers)
    again = await client.post("/v1/tasks", json=task("a red fox"), headers=headers)

    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(fake_api.received) == 1
    assert len(await decisions(store, caller.account_id)) == 2  # the first submit's, alone


async def test_a_submit_refused_for_credits_keeps_both_decisions(
    client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    poor = await make_caller(credits=PRICE - 1)

    response = await client.post("/v1/tasks", json=task("a red fox"), headers=poor.headers)

    assert response.status_code == 402
    assert await count(store, "tasks") == 0
    kept = await decisions(store, poor.account_id)
    assert [(d.stage, d.verdict) for d in kept] == [("rules", "allowed"), ("external", "allowed")]


async def test_failures_are_logged_without_the_prompt_or_the_key(
    json_logs: None,
    capsys: pytest.CaptureFixture[str],
    client: httpx.AsyncClient,
    caller: Caller,
    fake_api: FakeModerationApi,
) -> None:
    fake_api.answer, fake_api.status = "status", 503
    prompt = "a very particular fox"
    await client.post("/v1/tasks", json=task(prompt), headers=caller.headers)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    [failed] = [line for line in lines if line["event"] == "moderation.external_failed"]
    assert (failed["error"], failed["status"], failed["on_error"]) == ("http_503", 503, "block")
    everything = json.dumps(lines)
    assert "particular" not in everything
    assert API_KEY not in everything


@pytest.mark.parametrize(("on_error", "allowed"), [("block", False), ("allow", True)])
async def test_no_server_listening_is_unreachable(
    settings: Settings, on_error: str, allowed: bool
) -> None:
    sock = bind_loopback()  # a port of ours with nobody listening on it
    port = sock.getsockname()[1]
    stage_settings = replace(
        settings.external_moderation, url=f"http://127.0.0.1:{port}{PATH}", on_error=on_error
    )
    try:
        async with moderation_client(settings) as http:
            verdict = await ExternalModeration(stage_settings, http).check("a red fox")
    finally:
        sock.close()
    assert verdict == ExternalVerdict(allowed=allowed, error="unreachable")
