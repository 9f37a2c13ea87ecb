"""``/v1/endpoints`` over real HTTP and a real SQLite file: create, read, list, change, delete,
rotate the secret and ping — with the secret shown on create and rotate only."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.core.endpoints import signing_secrets
from service.core.signing import decode_secret, encode_secret
from service.store.sqlite import SqliteStore
from service.web.context import Services
from tests.api.test_openapi import check, response_schema
from tests.conftest import Caller, MakeCaller
from tests.endpoints.conftest import HOOK, Api, rows

ENDPOINT_FIELDS = {
    "id", "url", "description", "event_types", "enabled", "disabled_reason", "created_at",
    "updated_at",
}  # fmt: skip


async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def conforms(document: dict[str, Any], response: httpx.Response, path: str, method: str) -> None:
    check(document, response.json(), response_schema(document, path, method, response.status_code))


async def test_create_answers_201_with_the_endpoint_and_a_generated_secret(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.post("/v1/endpoints", json={"url": HOOK}, headers=caller.headers)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {*ENDPOINT_FIELDS, "secret"}
    assert body["id"].startswith("ep_")
    assert response.headers["location"] == f"/v1/endpoints/{body['id']}"
    assert body["url"] == HOOK
    assert body["description"] == ""
    assert body["event_types"] is None
    assert body["enabled"] is True
    assert body["disabled_reason"] is None
    assert body["created_at"] == body["updated_at"]
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    conforms(await spec(client), response, "/v1/endpoints", "post")


async def test_generated_secrets_differ(api: Api, caller: Caller) -> None:
    first, second = await api.create(caller), await api.create(caller)
    assert first["secret"] != second["secret"]


@pytest.mark.parametrize("size", [24, 64])
async def test_a_given_secret_of_24_to_64_bytes_is_kept(
    api: Api, caller: Caller, store: SqliteStore, size: int
) -> None:
    secret = encode_secret(bytes(range(size)))

    created = await api.create(caller, secret=secret, description="mine", event_types=["ping"])

    assert created["secret"] == secret
    assert created["description"] == "mine"
    assert created["event_types"] == ["ping"]
    # kept sealed (tests/endpoints/test_sealed_secrets.py): the store opens it back
    (stored,) = await rows(store, "SELECT secret FROM endpoints WHERE id = ?", created["id"])
    assert stored["secret"].startswith("enc:v1:")
    endpoint = await store.get_endpoint(caller.account_id, created["id"])
    assert endpoint is not None
    assert endpoint.secret == secret


@pytest.mark.parametrize("size", [23, 65])
async def test_a_given_secret_outside_24_to_64_bytes_is_422(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, size: int
) -> None:
    response = await client.post(
        "/v1/endpoints",
        json={"url": HOOK, "secret": encode_secret(b"s" * size)},
        headers=caller.headers,
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "secret"
    assert await rows(store, "SELECT id FROM endpoints") == []


async def test_the_secret_never_appears_outside_create_and_rotate(
    api: Api, client: httpx.AsyncClient, caller: Caller
) -> None:
    created = await api.create(caller)
    endpoint_id, secret = created["id"], created["secret"]
    key_text = base64.b64encode(decode_secret(secret)).decode()

    answers = [
        await api.get(caller, endpoint_id),
        await client.get("/v1/endpoints", headers=caller.headers),
        await api.patch(caller, endpoint_id, {"description": "x"}),
        await api.patch(caller, endpoint_id, {}),
    ]

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert "secret" not in answer.text
        assert key_text not in answer.text
    assert set(answers[0].json()) == ENDPOINT_FIELDS
    assert set(answers[1].json()["data"][0]) == ENDPOINT_FIELDS
    assert set(answers[2].json()) == ENDPOINT_FIELDS


async def test_get_returns_what_create_made(
    api: Api, caller: Caller, client: httpx.AsyncClient
) -> None:
    created = await api.create(caller, event_types=["task.failed"])
    response = await api.get(caller, created["id"])

    assert response.status_code == 200
    assert response.json() == {k: v for k, v in created.items() if k != "secret"}
    conforms(await spec(client), response, "/v1/endpoints/{endpoint_id}", "get")


async def test_list_pages_newest_first_and_shows_only_the_callers_endpoints(
    api: Api, client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    mine, theirs = await make_caller(), await make_caller(name="other")
    made = [(await api.create(mine, description=str(i)))["id"] for i in range(5)]
    await api.create(theirs)

    seen: list[str] = []
    cursor: str | None = None
    document = await spec(client)
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/endpoints", params=params, headers=mine.headers)
        assert page.status_code == 200
        conforms(document, page, "/v1/endpoints", "get")
        seen += [e["id"] for e in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted(made, reverse=True)
    empty = await make_caller(name="empty")
    nothing = await client.get("/v1/endpoints", headers=empty.headers)
    assert nothing.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"url": "http://127.0.0.1:9/other"}, {"url": "http://127.0.0.1:9/other"}),
        ({"description": "billing hooks"}, {"description": "billing hooks"}),
        ({"description": None}, {"description": ""}),
        ({"event_types": ["task.succeeded"]}, {"event_types": ["task.succeeded"]}),
        ({"event_types": None}, {"event_types": None}),
        ({"enabled": False}, {"enabled": False, "disabled_reason": "manual"}),
    ],
)
async def test_patch_changes_each_field(
    api: Api,
    caller: Caller,
    client: httpx.AsyncClient,
    change: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    created = await api.create(caller, description="d", event_types=["task.failed"])

    response = await api.patch(caller, created["id"], change)

    assert response.status_code == 200, response.text
    body = response.json()
    for name, value in expected.items():
        assert body[name] == value
    untouched = set(ENDPOINT_FIELDS) - set(expected) - {"updated_at"}
    assert {k: body[k] for k in untouched} == {k: created[k] for k in untouched}
    assert body["updated_at"] >= created["updated_at"]
    assert (await api.get(caller, created["id"])).json() == body
    conforms(await spec(client), response, "/v1/endpoints/{endpoint_id}", "patch")


async def test_re_enabling_clears_the_reason_and_the_failure_streak(
    api: Api, caller: Caller, store: SqliteStore
) -> None:
    created = await api.create(caller)
    async with store.transaction() as tx:
        endpoint = await tx.get_endpoint(caller.account_id, created["id"])
        assert endpoint is not None
        await tx.update_endpoint(
            replace(endpoint, enabled=False, disabled_reason="gone", failing_since=123)
        )
    assert (await api.get(caller, created["id"])).json()["disabled_reason"] == "gone"

    response = await api.patch(caller, created["id"], {"enabled": True})

    assert response.json()["enabled"] is True
    assert response.json()["disabled_reason"] is None
    stored = await rows(store, "SELECT failing_since FROM endpoints WHERE id = ?", created["id"])
    assert stored == [{"failing_since": None}]


async def test_delete_answers_204_then_the_endpoint_is_gone(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    created = await api.create(caller)
    kept = await api.create(caller)
    path = f"/v1/endpoints/{created['id']}"

    response = await client.delete(path, headers=caller.headers)

    assert response.status_code == 204
    assert response.content == b""
    for again in (
        await client.get(path, headers=caller.headers),
        await client.patch(path, json={"description": "x"}, headers=caller.headers),
        await client.delete(path, headers=caller.headers),
        await client.post(f"{path}/rotate-secret", headers=caller.headers),
        await client.post(f"{path}/test", headers=caller.headers),
    ):
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"
    listed = await client.get("/v1/endpoints", headers=caller.headers)
    assert [e["id"] for e in listed.json()["data"]] == [kept["id"]]
    stored = await rows(
        store, "SELECT enabled, deleted_at FROM endpoints WHERE id = ?", created["id"]
    )
    assert stored[0]["enabled"] == 0
    assert stored[0]["deleted_at"] is not None


async def test_rotate_returns_a_new_secret_and_keeps_the_old_one_signing(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore, app: Starlette
) -> None:
    created = await api.create(caller)

    response = await client.post(
        f"/v1/endpoints/{created['id']}/rotate-secret", headers=caller.headers
    )

    assert response.status_code == 200
    assert set(response.json()) == {"secret"}
    new_secret = response.json()["secret"]
    assert new_secret != created["secret"]
    assert len(decode_secret(new_secret)) == 32
    conforms(await spec(client), response, "/v1/endpoints/{endpoint_id}/rotate-secret", "post")
    endpoint = await store.get_endpoint(caller.account_id, created["id"])
    assert endpoint is not None
    services: Services = app.state.services
    overlap_ms = services.settings.delivery.secret_overlap_seconds * 1000
    assert endpoint.previous_secret_until == endpoint.updated_at + overlap_ms
    now = endpoint.updated_at
    assert signing_secrets(endpoint, now) == [new_secret, created["secret"]]
    assert signing_secrets(endpoint, now + overlap_ms) == [new_secret]
    assert "secret" not in (await api.get(caller, created["id"])).text


async def test_ping_writes_one_event_and_one_delivery_to_that_endpoint_only(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    # filtered to another type: a test pings anyway; the other endpoint hears nothing
    target = await api.create(caller, event_types=["task.failed"])
    await api.create(caller)

    response = await client.post(f"/v1/endpoints/{target['id']}/test", headers=caller.headers)

    assert response.status_code == 202
    event = response.json()
    assert event["type"] == "ping"
    assert event["id"].startswith("evt_")
    conforms(await spec(client), response, "/v1/endpoints/{endpoint_id}/test", "post")
    events = await rows(store, "SELECT id, type, task_id, payload, account_id FROM events")
    assert len(events) == 1
    assert events[0]["id"] == event["id"]
    assert events[0]["account_id"] == caller.account_id
    assert f'"data":{{"endpoint_id":"{target["id"]}"}}' in events[0]["payload"]
    deliveries = await rows(
        store, "SELECT event_id, endpoint_id, status, next_attempt_at, created_at FROM deliveries"
    )
    assert len(deliveries) == 1
    assert deliveries[0]["event_id"] == event["id"]
    assert deliveries[0]["endpoint_id"] == target["id"]
    assert deliveries[0]["status"] == "pending"
    assert deliveries[0]["next_attempt_at"] == deliveries[0]["created_at"]
