"""``[api] rate_limit``: every ``/v1`` answer to a valid key carries the key's quota, errors
included; past the burst the key gets 429 ``rate_limited`` with ``Retry-After`` and its budget
comes back after that wait; keys are counted apart; provider callbacks and the operations
routes are never limited; 0 turns the limit off.

The limits are small and the windows chosen so a test never waits more than a second. The
library counts windows aligned to the clock: a burst that straddles a window's edge may be let
one request further (the previous window's weight rounds down), so "past the burst" allows that
one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from service.settings import Settings, load_settings
from tests.api.test_errors import assert_error
from tests.backends import reader
from tests.conftest import EXTERNAL_PROVIDERS, Caller, settings_env
from tests.ratelimit.helpers import RATELIMIT_HEADERS, limits_env, running
from tests.upstream.test_callback_rejections import Harness, success_body

TASK = {"prompt": "a red fox in the snow", "model": "nano-banana"}


def quota(response: httpx.Response) -> tuple[int, int, int]:
    """``(limit, remaining, reset)`` from an answer's RateLimit-* headers."""
    limit, remaining, reset = (int(response.headers[name]) for name in RATELIMIT_HEADERS)
    return limit, remaining, reset


async def spend(http: httpx.AsyncClient, who: Caller, at_most: int) -> list[httpx.Response]:
    """``GET /v1/account`` until the first 429 (or ``at_most`` answers)."""
    answers = []
    for _ in range(at_most):
        answers.append(await http.get("/v1/account", headers=who.headers))
        if answers[-1].status_code == 429:
            break
    return answers


async def test_every_v1_answer_to_a_key_carries_its_quota_errors_included(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, limits_env(1, 50), over_uvicorn=True) as app:
        who = await app.caller()
        bad_body = {**who.headers, "Content-Type": "application/json"}
        answers = [
            await app.http.get("/v1/account", headers=who.headers),
            await app.http.get("/v1/tasks/task_nope", headers=who.headers),
            await app.http.post("/v1/tasks", json={"prompt": ""}, headers=who.headers),
            await app.http.post("/v1/tasks", content=b"{nope", headers=bad_body),
            await app.http.get("/v1/tasks", params={"limit": "0"}, headers=who.headers),
            await app.http.delete("/v1/endpoints/ep_nope", headers=who.headers),
            await app.http.post("/v1/tasks", json=TASK, headers=who.headers),
        ]
        assert [a.status_code for a in answers] == [200, 404, 422, 400, 422, 404, 202]
        for answer in answers:
            limit, remaining, reset = quota(answer)
            assert limit == 50
            assert 0 <= remaining < 50
            assert reset >= 0
            assert answer.headers["ratelimit-policy"] == "50;w=50"
        assert quota(answers[-1])[1] < quota(answers[0])[1]

        unknown = await app.http.get("/v1/account", headers={"Authorization": "Bearer nope"})
        assert unknown.status_code == 401
        open_routes = [await app.http.get(p) for p in ("/healthz", "/openapi.json", "/metrics")]
        for answer in [unknown, *open_routes]:
            assert not any(name in answer.headers for name in RATELIMIT_HEADERS), answer


async def test_past_the_burst_a_key_gets_429_rate_limited_with_retry_after(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, limits_env(1, 20)) as app:
        who = await app.caller()
        answers = await spend(app.http, who, 22)
        # At once (the budget comes back at the rate, 1/s: on a busy machine a pause before
        # the next request could give it a place): a valid submission, refused before the
        # handler ran, so neither charged nor stored.
        submitted = await app.http.post("/v1/tasks", json=TASK, headers=who.headers)
        statuses = [a.status_code for a in answers]
        assert statuses[:20] == [200] * 20
        assert statuses[-1] == 429, statuses  # the 21st, or the 22nd at a window's edge
        refused = answers[-1]
        assert_error(refused, 429, "rate_limited")
        retry_after = refused.headers["retry-after"]
        assert retry_after.isdigit()
        assert int(retry_after) >= 1
        limit, remaining, reset = quota(refused)
        assert (limit, remaining) == (20, 0)
        assert int(retry_after) == max(1, reset)

        assert_error(submitted, 429, "rate_limited")
        assert await app.store.balance(who.account_id) == 1000
        async with reader(app.store).execute("SELECT COUNT(*) FROM tasks") as cursor:
            assert tuple(await cursor.fetchone() or ()) == (0,)


async def test_the_budget_comes_back_after_retry_after(tmp_path: Path) -> None:
    async with running(tmp_path, limits_env(5, 5)) as app:
        who = await app.caller()
        answers = await spend(app.http, who, 7)
        assert answers[-1].status_code == 429
        wait = int(answers[-1].headers["retry-after"])
        assert wait == 1  # a one-second window: never more
        await asyncio.sleep(wait)
        again = await app.http.get("/v1/account", headers=who.headers)
        assert again.status_code == 200, again.text
        assert quota(again)[0] == 5


async def test_each_key_has_its_own_budget(tmp_path: Path) -> None:
    async with running(tmp_path, limits_env(1, 5)) as app:
        first = await app.caller()
        second_key = await app.another_key(first)
        stranger = await app.caller(name="stranger")
        answers = await spend(app.http, first, 7)
        assert answers[-1].status_code == 429
        for who in (second_key, stranger):
            fresh = await app.http.get("/v1/account", headers=who.headers)
            assert fresh.status_code == 200
            assert quota(fresh)[:2] == (5, 4)
        still = await app.http.get("/v1/account", headers=first.headers)
        assert still.status_code == 429


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """For the ``h`` harness: a limit of three requests a key."""
    return load_settings(settings_env(tmp_path, **EXTERNAL_PROVIDERS, **limits_env(1, 3)))


async def test_provider_callbacks_and_operations_routes_are_never_limited(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    spent = await spend(h.client, caller, 5)
    assert_error(spent[-1], 429, "rate_limited")

    body = success_body()
    first = await h.deliver(task["id"], body)
    assert first.status_code == 200, first.text
    path = await h.path(task["id"])
    for _ in range(30):  # the same callback again and again: duplicates, each answered
        again = await h.post(path, body, h.sign(body))
        assert again.status_code == 200, again.text
        assert not any(name in again.headers for name in RATELIMIT_HEADERS)
    forged = path[:-1] + ("A" if path[-1] != "A" else "B")  # the token altered
    for _ in range(30):
        refused = await h.post(forged, body, h.sign(body))
        assert refused.status_code == 401, refused.text
    for route in ("/healthz", "/readyz", "/metrics", "/openapi.json") * 10:
        assert (await h.client.get(route)).status_code == 200, route


async def test_a_rate_limit_of_zero_turns_the_limit_off(tmp_path: Path) -> None:
    async with running(tmp_path, limits_env(0, 1)) as app:
        who = await app.caller()
        for _ in range(30):
            answer = await app.http.get("/v1/account", headers=who.headers)
            assert answer.status_code == 200
            assert not any(name in answer.headers for name in RATELIMIT_HEADERS)
