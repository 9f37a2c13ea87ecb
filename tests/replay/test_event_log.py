"""The event log and delivery history: ``GET /v1/events`` (newest first, filtered by type, task
and time, in pages), ``/v1/events/{id}``, ``/v1/events/{id}/deliveries``,
``/v1/endpoints/{id}/deliveries?status=`` and ``/v1/deliveries/{id}/attempts`` — each private to
its account, and each answer matching the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.core.clock import to_rfc3339
from service.core.pagination import encode_cursor
from tests.api.test_openapi import check
from tests.conftest import Caller
from tests.replay.conftest import Bench, assert_error

EVENT_FIELDS = {"id", "type", "task_id", "created_at", "payload"}
DELIVERY_FIELDS = {
    "id", "event_id", "endpoint_id", "status", "attempts", "next_attempt_at", "manual",
    "last_status", "last_error", "created_at", "updated_at",
}  # fmt: skip
ATTEMPT_FIELDS = {
    "id", "delivery_id", "number", "status_code", "latency_ms", "response_body", "error",
    "manual", "created_at",
}  # fmt: skip


async def conforms(bench: Bench, response: httpx.Response, path: str, method: str) -> None:
    """The answer's status is documented for the operation and its body matches the schema."""
    spec = (await bench.client.get("/openapi.json")).json()
    responses = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, response.status_code)
    schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
    check(spec, response.json(), schema)


async def walk(bench: Bench, who: Caller, path: str, limit: int, **params: str) -> list[str]:
    """Every id of a list, page by page; each page at most ``limit`` long."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = await bench.get(who, path, limit=str(limit), **params, **extra)
        assert len(page["data"]) <= limit
        ids += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def task(bench: Bench, who: Caller) -> dict[str, Any]:
    bench.tick()
    response = await bench.client.post(
        "/v1/tasks", json={"prompt": "a red fox", "model": "nano-banana"}, headers=who.headers
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


# --- events ------------------------------------------------------------------------------------


async def test_events_are_listed_newest_first_in_pages(bench: Bench) -> None:
    who = await bench.caller()
    made = [(await bench.event(who)).id for _ in range(5)]

    response = await bench.client.get("/v1/events", params={"limit": 2}, headers=who.headers)

    assert response.status_code == 200
    await conforms(bench, response, "/v1/events", "get")
    assert [e["id"] for e in response.json()["data"]] == [made[4], made[3]]
    assert await walk(bench, who, "/v1/events", 2) == made[::-1]
    assert await walk(bench, who, "/v1/events", 100) == made[::-1]


async def test_an_event_shows_its_payload_as_subscribers_receive_it(bench: Bench) -> None:
    who = await bench.caller()
    created = await task(bench, who)
    [listed] = (await bench.get(who, "/v1/events"))["data"]

    response = await bench.client.get(f"/v1/events/{listed['id']}", headers=who.headers)

    assert response.status_code == 200, response.text
    await conforms(bench, response, "/v1/events/{event_id}", "get")
    event = response.json()
    assert event == listed
    assert set(event) == EVENT_FIELDS
    assert (event["type"], event["task_id"]) == ("task.queued", created["id"])
    [(payload,)] = await bench.rows("SELECT payload FROM events WHERE id = ?", event["id"])
    assert event["payload"] == json.loads(payload)
    assert event["payload"]["data"]["id"] == created["id"]
    assert event["created_at"] == event["payload"]["timestamp"]


async def test_events_filter_by_type_task_and_time(bench: Bench) -> None:
    who = await bench.caller()
    first = await task(bench, who)
    second = await task(bench, who)
    middle = bench.now[0]
    failed = await bench.event(who, "task.failed", task_id=first["id"])
    ping = await bench.event(who, "ping")
    queued = await walk(bench, who, "/v1/events", 10, type="task.queued")

    def ids(page: dict[str, Any]) -> list[str]:
        return [e["id"] for e in page["data"]]

    assert len(queued) == 2
    assert ids(await bench.get(who, "/v1/events", type="ping")) == [ping.id]
    of_first = await bench.get(who, "/v1/events", task_id=first["id"])
    assert [e["type"] for e in of_first["data"]] == ["task.failed", "task.queued"]
    assert ids(of_first)[0] == failed.id
    assert len(ids(await bench.get(who, "/v1/events", task_id=second["id"]))) == 1
    assert ids(await bench.get(who, "/v1/events", task_id="task_nope")) == []
    after = await bench.get(who, "/v1/events", after=to_rfc3339(middle))
    assert ids(after) == [ping.id, failed.id]
    before = await bench.get(who, "/v1/events", before=to_rfc3339(failed.created_at))
    assert ids(before) == queued
    window = {"after": to_rfc3339(middle), "before": to_rfc3339(ping.created_at)}
    assert ids(await bench.get(who, "/v1/events", **window)) == [failed.id]
    both = await bench.get(who, "/v1/events", type="task.failed", task_id=second["id"])
    assert ids(both) == []
    assert await walk(bench, who, "/v1/events", 1, type="task.queued") == queued


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"type": "task.done"}, 422, "type"),
        ({"after": "yesterday"}, 400, "after"),
        ({"before": "2026-01-01"}, 400, "before"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "x"}, 400, "limit"),
        ({"cursor": "zzz"}, 400, "cursor"),
    ],
)
async def test_bad_event_filters_are_refused(
    bench: Bench, params: dict[str, str], status: int, field: str
) -> None:
    who = await bench.caller()

    response = await bench.client.get("/v1/events", params=params, headers=who.headers)

    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    await conforms(bench, response, "/v1/events", "get")


# --- deliveries and attempts -------------------------------------------------------------------


async def test_an_events_deliveries_are_listed_in_pages(bench: Bench) -> None:
    who = await bench.caller()
    for path in ("/a", "/b", "/c"):
        await bench.endpoint(who, path)
    event = await bench.event(who)
    path = f"/v1/events/{event.id}/deliveries"

    response = await bench.client.get(path, headers=who.headers)

    assert response.status_code == 200
    await conforms(bench, response, "/v1/events/{event_id}/deliveries", "get")
    data = response.json()["data"]
    assert len(data) == 3
    assert all(set(d) == DELIVERY_FIELDS and d["event_id"] == event.id for d in data)
    assert await walk(bench, who, path, 2) == [d["id"] for d in data]


async def test_an_endpoints_deliveries_filter_by_status(bench: Bench) -> None:
    who = await bench.caller()
    bench.receiver.script["/hook"] = [200, 500]
    endpoint = (await bench.endpoint(who))["id"]
    path = f"/v1/endpoints/{endpoint}/deliveries"
    delivered = await bench.event(who)
    await bench.round()
    failed = await bench.failed_event(who, endpoint)
    retrying = await bench.event(who)
    await bench.round()

    def events(page: dict[str, Any]) -> list[str]:
        return [d["event_id"] for d in page["data"]]

    response = await bench.client.get(path, params={"status": "pending"}, headers=who.headers)
    await conforms(bench, response, "/v1/endpoints/{endpoint_id}/deliveries", "get")
    assert events(response.json()) == [retrying.id]
    assert events(await bench.get(who, path, status="delivered")) == [delivered.id]
    assert events(await bench.get(who, path, status="failed")) == [failed.id]
    assert events(await bench.get(who, path)) == [retrying.id, failed.id, delivered.id]
    assert len(await walk(bench, who, path, 1)) == 3
    [pending] = (await bench.get(who, path, status="pending"))["data"]
    assert (pending["attempts"], pending["last_status"]) == (1, 500)
    assert pending["next_attempt_at"] is not None
    bad = await bench.client.get(path, params={"status": "lost"}, headers=who.headers)
    assert_error(bad, 422, "validation_error", "status")
    await conforms(bench, bad, "/v1/endpoints/{endpoint_id}/deliveries", "get")


async def test_a_deliverys_attempts_are_listed_in_order_in_pages(bench: Bench) -> None:
    who = await bench.caller()
    bench.receiver.script["/down"] = [(503, {"X": "y"})]
    endpoint = (await bench.endpoint(who, "/down"))["id"]
    event = await bench.event(who)
    for _ in range(5):
        await bench.round(advance_s=5)
    [delivery] = (await bench.get(who, f"/v1/endpoints/{endpoint}/deliveries"))["data"]
    path = f"/v1/deliveries/{delivery['id']}/attempts"

    response = await bench.client.get(path, params={"limit": 3}, headers=who.headers)

    assert response.status_code == 200
    await conforms(bench, response, "/v1/deliveries/{delivery_id}/attempts", "get")
    first = response.json()
    assert [a["number"] for a in first["data"]] == [1, 2, 3]
    rest = await bench.get(who, path, limit="3", cursor=first["next_cursor"])
    assert [a["number"] for a in rest["data"]] == [4]
    assert rest["next_cursor"] is None
    attempt = first["data"][0]
    assert set(attempt) == ATTEMPT_FIELDS
    assert (attempt["delivery_id"], attempt["status_code"], attempt["manual"]) == (
        delivery["id"], 503, False,
    )  # fmt: skip
    assert attempt["response_body"] == ""
    whole = await walk(bench, who, path, 100)
    assert whole == [a["id"] for a in first["data"] + rest["data"]]
    # a well-formed cursor that is none of this delivery's attempts is no place in the list
    elsewhere = await bench.get(who, path, cursor=encode_cursor(event.id))
    assert elsewhere == {"data": [], "next_cursor": None}


# --- privacy and unknown ids -------------------------------------------------------------------


async def test_another_accounts_log_is_invisible(bench: Bench) -> None:
    alice, bob = await bench.caller("alice"), await bench.caller("bob")
    endpoint = (await bench.endpoint(alice))["id"]
    event = await bench.event(alice)
    await bench.round()
    [delivery] = (await bench.get(alice, f"/v1/events/{event.id}/deliveries"))["data"]

    assert (await bench.get(bob, "/v1/events"))["data"] == []
    for path in (
        f"/v1/events/{event.id}",
        f"/v1/events/{event.id}/deliveries",
        f"/v1/endpoints/{endpoint}/deliveries",
        f"/v1/deliveries/{delivery['id']}/attempts",
    ):
        assert_error(await bench.client.get(path, headers=bob.headers), 404, "not_found")
        assert (await bench.client.get(path, headers=alice.headers)).status_code == 200
        assert_error(await bench.client.get(path), 401, "unauthorized")
    assert_error(await bench.client.get("/v1/events"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "spec_path"),
    [
        ("/v1/events/evt_01J00000000000000000000000", "/v1/events/{event_id}"),
        ("/v1/events/nope/deliveries", "/v1/events/{event_id}/deliveries"),
        ("/v1/endpoints/ep_01J00000000000000000000000/deliveries",
         "/v1/endpoints/{endpoint_id}/deliveries"),
        ("/v1/deliveries/dlv_01J00000000000000000000000/attempts",
         "/v1/deliveries/{delivery_id}/attempts"),
        ("/v1/deliveries/evt_x/attempts", "/v1/deliveries/{delivery_id}/attempts"),
    ],
)  # fmt: skip
async def test_unknown_ids_are_404(bench: Bench, path: str, spec_path: str) -> None:
    who = await bench.caller()

    response = await bench.client.get(path, headers=who.headers)

    assert_error(response, 404, "not_found")
    await conforms(bench, response, spec_path, "get")


async def test_replay_and_recover_answers_match_the_document(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    event = await bench.failed_event(who, endpoint)
    replay_path, recover_path = (
        "/v1/events/{event_id}/replay",
        "/v1/endpoints/{endpoint_id}/recover",
    )
    since = {"since": "2020-01-01T00:00:00Z"}
    await bench.client.patch(
        f"/v1/endpoints/{endpoint}", json={"enabled": False}, headers=who.headers
    )
    disabled = await bench.post(who, f"/v1/endpoints/{endpoint}/recover", since)
    await bench.client.patch(
        f"/v1/endpoints/{endpoint}", json={"enabled": True}, headers=who.headers
    )

    cases = [
        (replay_path, await bench.post(who, f"/v1/events/{event.id}/replay"), 202),
        (replay_path, await bench.post(who, f"/v1/events/{event.id}/replay", []), 422),
        (replay_path, await bench.post(who, "/v1/events/evt_x/replay"), 404),
        (recover_path, await bench.post(who, f"/v1/endpoints/{endpoint}/recover", since), 202),
        (recover_path, await bench.post(
            who, f"/v1/endpoints/{endpoint}/recover", {**since, "dry_run": True}
        ), 200),
        (recover_path, await bench.post(
            who, f"/v1/endpoints/{endpoint}/recover", {"since": "x"}
        ), 400),
        (recover_path, disabled, 409),
    ]  # fmt: skip
    for path, response, status in cases:
        assert response.status_code == status, (path, response.text)
        await conforms(bench, response, path, "post")
    [queued] = cases[0][1].json()["deliveries"]
    assert set(queued) == DELIVERY_FIELDS
