"""The inbound callback log, ``GET /v1/callbacks`` and ``POST /v1/callbacks/{id}/replay``: newest
first in pages, filtered by task, headers kept (credentials dropped), the body as sent, verdict
and outcome; private to the account; a replay goes through the ledger again and changes nothing
that already happened; a kie success that could not be confirmed is kept as ``pending`` and stays
so while the provider cannot be reached."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Caller, MakeCaller
from tests.upstream.test_callback_rejections import (
    SIM_ID,
    Harness,
    assert_error,
    encode,
    envelope,
    fail_body,
    generating_body,
    success_body,
)

CALLBACK_FIELDS = {
    "id", "task_id", "provider", "provider_task_id", "verdict", "outcome", "detail", "headers",
    "body", "received_at", "applied_at",
}  # fmt: skip
KIE_ID = "kie_task_0001"
KIE_HMAC_KEY = "kie-webhook-hmac-key-0123"


async def page(h: Harness, who: Caller, **params: str) -> dict[str, Any]:
    response = await h.client.get("/v1/callbacks", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"data", "next_cursor"}
    return body


async def replay(h: Harness, who: Caller, callback_id: str) -> httpx.Response:
    return await h.client.post(f"/v1/callbacks/{callback_id}/replay", headers=who.headers)


async def deliver_apart(h: Harness, task_id: str, body: bytes) -> httpx.Response:
    """Deliver, then let the clock pass a millisecond: ids made in one millisecond are ordered
    by their random part, and these tests are about arrival order."""
    response = await h.deliver(task_id, body)
    assert response.status_code == 200, response.text
    await asyncio.sleep(0.003)
    return response


# --- listing -----------------------------------------------------------------------------------


async def test_the_log_lists_newest_first_in_pages(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    sent = [
        (await deliver_apart(h, task["id"], generating_body(progress=p))).json()["id"]
        for p in (10, 20, 30)
    ]

    first = await page(h, caller, limit="2")
    assert first["next_cursor"] is not None
    second = await page(h, caller, limit="2", cursor=first["next_cursor"])

    assert [cb["id"] for cb in first["data"]] == [sent[2], sent[1]]
    assert [cb["body"]["data"]["progress"] for cb in first["data"]] == [30, 20]
    assert [cb["id"] for cb in second["data"]] == [sent[0]]
    assert second["data"][0]["body"]["data"]["progress"] == 10
    assert second["next_cursor"] is None
    everything = await page(h, caller)
    assert [cb["id"] for cb in everything["data"]] == sent[::-1]
    assert everything["next_cursor"] is None


async def test_the_log_pages_with_the_task_filter_on(h: Harness, caller: Caller) -> None:
    a = await h.submitted_task(caller)
    b = await h.submitted_task(caller, provider_task_id="sim_other")
    mine = []
    for progress in (10, 20, 30):
        mine.append((await deliver_apart(h, a["id"], generating_body(progress=progress))).json())
        await deliver_apart(h, b["id"], generating_body("sim_other", progress=progress))

    first = await page(h, caller, task_id=a["id"], limit="2")
    second = await page(h, caller, task_id=a["id"], limit="2", cursor=first["next_cursor"])

    listed = [cb["id"] for cb in first["data"] + second["data"]]
    assert listed == [cb["id"] for cb in reversed(mine)]
    assert second["next_cursor"] is None


async def test_the_log_filters_by_task(h: Harness, caller: Caller) -> None:
    a = await h.submitted_task(caller)
    b = await h.submitted_task(caller, provider_task_id="sim_other")
    await deliver_apart(h, a["id"], generating_body(progress=10))
    await deliver_apart(h, b["id"], generating_body("sim_other", progress=10))
    await deliver_apart(h, a["id"], success_body())

    only_a = (await page(h, caller, task_id=a["id"]))["data"]
    only_b = (await page(h, caller, task_id=b["id"]))["data"]
    both = (await page(h, caller))["data"]

    assert [cb["task_id"] for cb in only_a] == [a["id"], a["id"]]
    assert [cb["body"]["data"]["state"] for cb in only_a] == ["success", "generating"]
    assert [cb["task_id"] for cb in only_b] == [b["id"]]
    assert only_b[0]["provider_task_id"] == "sim_other"
    assert {cb["id"] for cb in both} == {cb["id"] for cb in only_a + only_b}
    assert (await page(h, caller, task_id="task_01J00000000000000000000000"))["data"] == []
    assert (await page(h, caller, task_id="not-a-task"))["data"] == []


async def test_a_kept_callback_shows_its_headers_body_verdict_and_outcome(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    body = success_body()
    signed = h.sign(body)
    headers = {
        **signed,
        "Authorization": "Bearer provider-secret-token",
        "Cookie": "session=abc",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "X-Trace-Id": "trace-123",
        "User-Agent": "simulator-test/1.0",
    }

    response = await h.post(await h.path(task["id"]), body, headers)

    assert response.status_code == 200, response.text
    [kept] = (await page(h, caller, task_id=task["id"]))["data"]
    assert set(kept) == CALLBACK_FIELDS
    assert kept["id"] == response.json()["id"]
    assert kept["task_id"] == task["id"]
    assert kept["provider"] == "simulator"
    assert kept["provider_task_id"] == SIM_ID
    assert kept["verdict"] == "verified"
    assert kept["outcome"] == "applied"
    assert kept["body"] == json.loads(body)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type"):
        assert kept["headers"][name] == signed[name]
    assert kept["headers"]["x-trace-id"] == "trace-123"
    assert kept["headers"]["user-agent"] == "simulator-test/1.0"
    assert all(name == name.lower() for name in kept["headers"])
    for secret in ("authorization", "cookie", "proxy-authorization"):
        assert secret not in kept["headers"]
    text = json.dumps(kept)
    assert "provider-secret-token" not in text
    assert "session=abc" not in text
    assert kept["received_at"].endswith("Z")
    assert kept["applied_at"] is not None
    assert kept["applied_at"].endswith("Z")


async def test_a_rejected_callback_keeps_a_body_that_is_not_json_as_text(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    headers = {**h.sign(b"not json"), "webhook-signature": "v1,garbage"}

    response = await h.post(await h.path(task["id"]), b"not json", headers)

    assert_error(response, 401, "invalid_signature")
    [kept] = (await page(h, caller, task_id=task["id"]))["data"]
    assert kept["body"] == "not json"
    assert kept["verdict"] == "rejected"
    assert kept["outcome"] == "rejected"
    assert kept["provider_task_id"] is None
    assert kept["applied_at"] is None
    assert kept["headers"]["webhook-signature"] == "v1,garbage"


async def test_duplicate_and_stale_callbacks_are_kept_with_their_outcome(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    await deliver_apart(h, task["id"], success_body())
    await deliver_apart(h, task["id"], success_body())
    await deliver_apart(h, task["id"], generating_body(progress=50))

    kept = (await page(h, caller, task_id=task["id"]))["data"]

    assert [cb["outcome"] for cb in kept] == ["stale", "duplicate", "applied"]
    assert all(cb["verdict"] == "verified" for cb in kept)
    assert kept[0]["applied_at"] is None
    assert kept[1]["applied_at"] is None


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": "0"}, 422, "validation_error"),
        ({"limit": "101"}, 422, "validation_error"),
        ({"limit": "ten"}, 400, "malformed_request"),
        ({"cursor": "not-a-cursor"}, 400, "malformed_request"),
    ],
)
async def test_bad_paging_parameters_are_refused(
    h: Harness, caller: Caller, params: dict[str, str], status: int, code: str
) -> None:
    response = await h.client.get("/v1/callbacks", params=params, headers=caller.headers)

    assert_error(response, status, code)


async def test_the_log_needs_a_key(h: Harness) -> None:
    assert_error(await h.client.get("/v1/callbacks"), 401, "unauthorized")
    assert_error(await h.client.post("/v1/callbacks/cb_x/replay"), 401, "unauthorized")


# --- privacy -----------------------------------------------------------------------------------


async def test_another_accounts_callbacks_are_invisible(
    h: Harness, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    bob = await make_caller(name="bob")
    task = await h.submitted_task(alice)
    callback_id = (await h.deliver(task["id"], success_body())).json()["id"]
    before = await h.snapshot(alice, task["id"])

    assert (await page(h, bob))["data"] == []
    assert (await page(h, bob, task_id=task["id"]))["data"] == []
    assert_error(await replay(h, bob, callback_id), 404, "not_found")
    assert await h.snapshot(alice, task["id"]) == before
    assert [cb["id"] for cb in (await page(h, alice))["data"]] == [callback_id]
    assert (await replay(h, alice, callback_id)).status_code == 200


@pytest.mark.parametrize("callback_id", ["cb_01J00000000000000000000000", "nope", "task_x"])
async def test_replaying_an_unknown_callback_is_404(
    h: Harness, caller: Caller, callback_id: str
) -> None:
    assert_error(await replay(h, caller, callback_id), 404, "not_found")


# --- replay ------------------------------------------------------------------------------------


async def test_replaying_an_applied_callback_changes_nothing(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    callback_id = (await h.deliver(task["id"], success_body())).json()["id"]
    await h.settle()
    [before_kept] = (await page(h, caller, task_id=task["id"]))["data"]
    before = await h.snapshot(caller, task["id"])
    assert before.task["status"] == "succeeded"

    response = await replay(h, caller, callback_id)

    assert response.status_code == 200, response.text
    replayed = response.json()
    assert set(replayed) == CALLBACK_FIELDS
    assert replayed["id"] == callback_id
    assert replayed["verdict"] == "verified"
    assert replayed["outcome"] == "applied"
    assert await h.snapshot(caller, task["id"]) == before
    assert (await page(h, caller, task_id=task["id"]))["data"] == [before_kept]


async def test_replaying_an_old_progress_callback_never_moves_the_task_back(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    progress_id = (await deliver_apart(h, task["id"], generating_body(progress=40))).json()["id"]
    await deliver_apart(h, task["id"], success_body())
    await h.settle()
    before = await h.snapshot(caller, task["id"])

    response = await replay(h, caller, progress_id)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"  # what it did when it arrived
    assert await h.snapshot(caller, task["id"]) == before
    assert before.task["status"] == "succeeded"


async def test_replaying_a_failure_does_not_refund_twice(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    callback_id = (await h.deliver(task["id"], fail_body())).json()["id"]
    before = await h.snapshot(caller, task["id"])
    assert before.task["refunded_credits"] == task["cost_credits"]

    for _ in range(2):
        assert (await replay(h, caller, callback_id)).status_code == 200

    assert await h.snapshot(caller, task["id"]) == before
    assert len(await h.refunds(caller, task["id"])) == 1


# --- kie: kept while it cannot be confirmed ----------------------------------------------------


def kie_headers(body: bytes) -> dict[str, str]:
    """Kie's own signature headers (HMAC over ``taskId.timestamp``); these settings configure no
    kie key, so they are not checked, and the claim is confirmed with ``recordInfo`` instead."""
    stamp = str(int(time.time()))
    task_id = json.loads(body)["data"]["taskId"]
    digest = hmac.new(KIE_HMAC_KEY.encode(), f"{task_id}.{stamp}".encode(), hashlib.sha256)
    return {
        "content-type": "application/json",
        "x-webhook-timestamp": stamp,
        "x-webhook-signature": base64.b64encode(digest.digest()).decode(),
    }


async def kie_task(h: Harness, who: Caller) -> dict[str, Any]:
    task = await h.submitted_task(who, provider_task_id=KIE_ID, provider="kie")
    assert task["provider"] == "kie"
    return task


async def deliver_kie(h: Harness, task_id: str, body: bytes) -> httpx.Response:
    return await h.post(await h.path(task_id, "kie"), body, kie_headers(body))


async def test_an_unconfirmed_kie_success_is_kept_pending_and_replay_keeps_it(
    h: Harness, caller: Caller
) -> None:
    task = await kie_task(h, caller)
    before = await h.snapshot(caller, task["id"])
    body = encode(envelope(KIE_ID, "success"))

    response = await deliver_kie(h, task["id"], body)

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id", "outcome"}
    assert response.json()["outcome"] == "pending"
    callback_id = response.json()["id"]
    assert await h.snapshot(caller, task["id"]) == before
    [kept] = (await page(h, caller, task_id=task["id"]))["data"]
    assert kept["id"] == callback_id
    assert kept["provider"] == "kie"
    assert kept["provider_task_id"] == KIE_ID
    assert kept["verdict"] == "verified"
    assert kept["outcome"] == "pending"
    assert kept["applied_at"] is None
    assert kept["body"] == json.loads(body)
    assert "confirm" in kept["detail"]

    again = await replay(h, caller, callback_id)

    assert again.status_code == 200, again.text
    assert again.json()["id"] == callback_id
    assert again.json()["outcome"] == "pending"
    assert await h.snapshot(caller, task["id"]) == before
    [still] = (await page(h, caller, task_id=task["id"]))["data"]
    assert still["outcome"] == "pending"
    assert still["applied_at"] is None


async def test_an_unconfirmed_kie_failure_refunds_nothing(h: Harness, caller: Caller) -> None:
    task = await kie_task(h, caller)
    before = await h.snapshot(caller, task["id"])

    response = await deliver_kie(h, task["id"], encode(envelope(KIE_ID, "fail")))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "pending"
    assert await h.snapshot(caller, task["id"]) == before
    assert await h.refunds(caller, task["id"]) == []


async def test_a_kie_progress_callback_needs_no_confirmation(h: Harness, caller: Caller) -> None:
    task = await kie_task(h, caller)
    body = encode(envelope(KIE_ID, "generating", progress=35))

    response = await deliver_kie(h, task["id"], body)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    moved = await h.get_task(caller, task["id"])
    assert moved["status"] == "running"
    assert moved["progress"] == 35


# --- bodies the log must still be able to show --------------------------------------------------

#: Bodies a provider (or anyone holding a task's callback URL) can have kept in the log. Python's
#: ``json`` reads all three, but what it reads cannot be written back as strict JSON.
PREFIX = b'{"code":200,"msg":"ok","data":{"taskId":"sim_abc","state":"generating",'
UNSHOWABLE = {
    "nan": PREFIX + b'"progress":NaN}}',
    "infinity": PREFIX + b'"x":1e400}}',
    "lone_surrogate": PREFIX + b'"x":"\\ud800"}}',
    "deeply_nested": b"[" * 100_000,
}


@pytest.mark.parametrize("body", UNSHOWABLE.values(), ids=UNSHOWABLE.keys())
async def test_the_log_shows_any_kept_body_without_a_500(
    h: Harness, caller: Caller, body: bytes
) -> None:
    task = await h.submitted_task(caller)
    # no valid signature needed: a rejected callback is kept all the same
    headers = {**h.sign(body), "webhook-signature": "v1,garbage"}
    assert_error(await h.post(await h.path(task["id"]), body, headers), 401, "invalid_signature")

    response = await h.client.get(
        "/v1/callbacks", params={"task_id": task["id"]}, headers=caller.headers
    )

    assert response.status_code == 200, response.text
    [kept] = response.json()["data"]
    assert kept["verdict"] == "rejected"
