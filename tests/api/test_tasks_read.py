"""Reading tasks over real HTTP: ``GET /v1/tasks/{id}``, its timeline, and ``GET /v1/tasks`` with
newest-first order, limit/cursor pagination, filters, and tenant isolation."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.conftest import Caller, MakeCaller

ERROR_KEYS = {"code", "message", "field"}


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_error(response: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


async def create(
    client: httpx.AsyncClient, who: Caller, prompt: str = "a cat", **extra: Any
) -> dict[str, Any]:
    body = {"prompt": prompt, "model": "nano-banana-fast", **extra}
    response = await client.post("/v1/tasks", json=body, headers=who.headers)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


async def list_page(client: httpx.AsyncClient, who: Caller, **params: str | int) -> dict[str, Any]:
    response = await client.get("/v1/tasks", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"data", "next_cursor"}
    return page


async def walk(client: httpx.AsyncClient, who: Caller, **params: str | int) -> list[str]:
    """Every task id the list gives, following next_cursor to the end."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        page = await list_page(client, who, **query)
        ids.extend(t["id"] for t in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


# --- one task -----------------------------------------------------------------------------------


async def test_get_task_returns_it(client: httpx.AsyncClient, caller: Caller) -> None:
    task = await create(client, caller)

    response = await client.get(f"/v1/tasks/{task['id']}", headers=caller.headers)

    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.parametrize(
    "task_id",
    [
        "task_01J00000000000000000000000",  # well-formed, never created
        "task_nope",
        "nope",
        "evt_01J00000000000000000000000",
        "task_01j00000000000000000000000",  # lower case is not an id
        "%20",
        "x" * 5000,
        "task_01J00000000000000000000000'%20OR%201=1--",
    ],
)
async def test_unknown_or_malformed_task_id_is_404(
    client: httpx.AsyncClient, caller: Caller, task_id: str
) -> None:
    for path in (f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}/timeline"):
        response = await client.get(path, headers=caller.headers)
        assert_error(response, 404, "not_found", "id")


async def test_another_accounts_task_is_404_never_403(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    mallory = await make_caller(name="mallory")
    task = await create(client, alice)

    own = await client.get(f"/v1/tasks/{task['id']}", headers=alice.headers)
    theirs = await client.get(f"/v1/tasks/{task['id']}", headers=mallory.headers)
    timeline = await client.get(f"/v1/tasks/{task['id']}/timeline", headers=mallory.headers)
    never = await client.get("/v1/tasks/task_01J00000000000000000000000", headers=mallory.headers)

    assert own.status_code == 200
    assert_error(theirs, 404, "not_found", "id")
    assert_error(timeline, 404, "not_found", "id")
    # indistinguishable from a task that never existed: no existence leak
    assert theirs.json() == never.json()


async def test_timeline_lists_entries_in_order(client: httpx.AsyncClient, caller: Caller) -> None:
    task = await create(client, caller)

    response = await client.get(f"/v1/tasks/{task['id']}/timeline", headers=caller.headers)

    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"data", "next_cursor"}
    assert [e["status"] for e in page["data"]] == ["queued"]
    assert set(page["data"][0]) == {
        "id",
        "kind",
        "source",
        "outcome",
        "status",
        "progress",
        "sequence",
        "detail",
        "created_at",
    }


# --- the list -------------------------------------------------------------------------------


async def test_empty_list(client: httpx.AsyncClient, caller: Caller) -> None:
    assert await list_page(client, caller) == {"data": [], "next_cursor": None}


async def test_list_is_newest_first(client: httpx.AsyncClient, caller: Caller) -> None:
    created = []
    for i in range(5):
        created.append((await create(client, caller, f"picture {i}"))["id"])
        await asyncio.sleep(0.002)  # distinct milliseconds: "newest" is well defined

    page = await list_page(client, caller)

    assert [t["id"] for t in page["data"]] == created[::-1]
    assert page["next_cursor"] is None
    stamps = [t["created_at"] for t in page["data"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_pagination_walks_every_task_exactly_once(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    created = [(await create(client, caller, f"picture {i}"))["id"] for i in range(7)]

    pages = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await list_page(client, caller, **params)
        pages.append([t["id"] for t in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(created)
    assert seen == sorted(seen, reverse=True)  # ids are time-ordered: one total order


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    for i in range(4):
        await create(client, caller, f"picture {i}")

    first = await list_page(client, caller, limit=2)
    second = await list_page(client, caller, limit=2, cursor=first["next_cursor"])

    assert len(first["data"]) == len(second["data"]) == 2
    assert isinstance(first["next_cursor"], str)
    assert second["next_cursor"] is None


async def test_tasks_created_while_paging_are_not_repeated(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    old = [(await create(client, caller, f"old {i}"))["id"] for i in range(4)]
    first = await list_page(client, caller, limit=2)

    await create(client, caller, "new while paging")
    rest = await walk(client, caller, limit=2, cursor=first["next_cursor"])

    seen = [t["id"] for t in first["data"]] + rest
    assert sorted(seen) == sorted(old)


@pytest.mark.parametrize("limit", [1, 2, 7, 100])
async def test_every_limit_walks_the_same_tasks(
    client: httpx.AsyncClient, caller: Caller, limit: int
) -> None:
    created = {(await create(client, caller, f"picture {i}"))["id"] for i in range(7)}

    seen = await walk(client, caller, limit=limit)

    assert len(seen) == len(set(seen))
    assert set(seen) == created


async def test_default_limit_is_20(client: httpx.AsyncClient, caller: Caller) -> None:
    for i in range(21):
        await create(client, caller, f"picture {i}")

    page = await list_page(client, caller)

    assert len(page["data"]) == 20
    assert page["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "101", "1000"])
async def test_limit_out_of_range_is_422(
    client: httpx.AsyncClient, caller: Caller, limit: str
) -> None:
    response = await client.get("/v1/tasks", params={"limit": limit}, headers=caller.headers)
    assert_error(response, 422, "validation_error", "limit")


@pytest.mark.parametrize("limit", ["abc", "-1", "1.5", "", " 3", "+3", "٣", "1e2"])
async def test_limit_not_a_number_is_400(
    client: httpx.AsyncClient, caller: Caller, limit: str
) -> None:
    response = await client.get("/v1/tasks", params={"limit": limit}, headers=caller.headers)
    assert_error(response, 400, "malformed_request", "limit")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        b64("task_01J00000000000000000000000"),  # no version
        b64("v1:task_01J0"),  # truncated id
        b64("v1:cred_01J00000000000000000000000"),  # the ledger's kind of cursor
        b64("v2:task_01J00000000000000000000000"),
        b64("v1:task_nope' OR 1=1 --"),
        "djE6dGFza18wMUowMDAwMDAwMDAwMDAwMDAwMDAwMDAw=====",  # bad padding
    ],
)
async def test_bad_cursor_is_400(client: httpx.AsyncClient, caller: Caller, cursor: str) -> None:
    response = await client.get("/v1/tasks", params={"cursor": cursor}, headers=caller.headers)
    assert_error(response, 400, "malformed_request", "cursor")


async def test_empty_cursor_means_the_first_page(client: httpx.AsyncClient, caller: Caller) -> None:
    task = await create(client, caller)

    page = await list_page(client, caller, cursor="")

    assert [t["id"] for t in page["data"]] == [task["id"]]


# --- filters ----------------------------------------------------------------------------------


async def test_filter_by_status(client: httpx.AsyncClient, caller: Caller) -> None:
    created = {(await create(client, caller, f"picture {i}"))["id"] for i in range(3)}

    queued = await walk(client, caller, status="queued")
    for status in ("submitted", "running", "succeeded", "failed"):
        assert await walk(client, caller, status=status) == []

    assert set(queued) == created


async def test_filter_by_model(client: httpx.AsyncClient, caller: Caller) -> None:
    fast = await create(client, caller, "one", model="nano-banana-fast")
    pro = await create(client, caller, "two", model="nano-banana-pro")
    fast2 = await create(client, caller, "three", model="nano-banana-fast")

    assert await walk(client, caller, model="nano-banana-pro") == [pro["id"]]
    assert set(await walk(client, caller, model="nano-banana-fast")) == {fast["id"], fast2["id"]}
    assert await walk(client, caller, model="nano-banana-2") == []


async def test_filter_by_created_after(client: httpx.AsyncClient, caller: Caller) -> None:
    first = await create(client, caller, "first")
    await asyncio.sleep(0.01)
    second = await create(client, caller, "second")
    await asyncio.sleep(0.01)
    third = await create(client, caller, "third")
    cut = first["created_at"]  # e.g. 2026-01-31T12:00:00.123Z; the filter is strict ">"
    moment = datetime.fromisoformat(cut.replace("Z", "+00:00"))
    same_moment_elsewhere = moment.astimezone(timezone(timedelta(hours=2))).isoformat()

    after_first = await walk(client, caller, created_after=cut)
    after_first_offset = await walk(client, caller, created_after=same_moment_elsewhere)
    before_all = await walk(client, caller, created_after="2000-01-01T00:00:00Z")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    after_now = await walk(client, caller, created_after=future)

    assert after_first == [third["id"], second["id"]]
    assert after_first_offset == after_first
    assert before_all == [third["id"], second["id"], first["id"]]
    assert after_now == []


async def test_filters_combine_and_paginate(client: httpx.AsyncClient, caller: Caller) -> None:
    want = set()
    for i in range(5):
        want.add((await create(client, caller, f"pro {i}", model="nano-banana-pro"))["id"])
        await create(client, caller, f"fast {i}", model="nano-banana-fast")

    seen = await walk(
        client,
        caller,
        limit=2,
        status="queued",
        model="nano-banana-pro",
        created_after="2000-01-01T00:00:00+00:00",
    )

    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == want


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-01-31",  # no time, no offset
        "2026-01-31T12:00:00",  # naive: refusing beats guessing a timezone
        "2026-13-01T00:00:00Z",
        "2026-01-31T25:00:00Z",
        "1700000000",
        "",
        "2026-01-31T12:00:00Z" + "0" * 100,
    ],
)
async def test_created_after_not_rfc3339_is_400(
    client: httpx.AsyncClient, caller: Caller, value: str
) -> None:
    response = await client.get(
        "/v1/tasks", params={"created_after": value}, headers=caller.headers
    )
    assert_error(response, 400, "malformed_request", "created_after")


@pytest.mark.parametrize("status", ["done", "QUEUED", "", "queued,failed"])
async def test_unknown_status_is_422(
    client: httpx.AsyncClient, caller: Caller, status: str
) -> None:
    response = await client.get("/v1/tasks", params={"status": status}, headers=caller.headers)
    assert_error(response, 422, "validation_error", "status")


async def test_unknown_model_filter_is_422(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.get("/v1/tasks", params={"model": "dall-e-3"}, headers=caller.headers)
    assert_error(response, 422, "validation_error", "model")


# --- tenant isolation -------------------------------------------------------------------------


async def test_lists_only_show_the_callers_tasks(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    bob = await make_caller(name="bob")
    alices = {(await create(client, alice, f"alice {i}"))["id"] for i in range(3)}
    bobs = {(await create(client, bob, f"bob {i}"))["id"] for i in range(2)}

    assert set(await walk(client, alice, limit=1)) == alices
    assert set(await walk(client, bob, limit=1)) == bobs
    for params in ({"status": "queued"}, {"model": "nano-banana-fast"}):
        assert set(await walk(client, bob, **params)) == bobs


async def test_another_accounts_cursor_leaks_nothing(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    bob = await make_caller(name="bob")
    for i in range(3):
        await create(client, alice, f"alice {i}")
    bobs = {(await create(client, bob, "bob"))["id"]}
    alice_cursor = (await list_page(client, alice, limit=1))["next_cursor"]
    assert isinstance(alice_cursor, str)

    seen = await walk(client, bob, cursor=alice_cursor)

    assert set(seen) <= bobs
