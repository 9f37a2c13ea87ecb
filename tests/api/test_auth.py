"""Authentication over real HTTP: every /v1 route wants ``Authorization: Bearer <key>``; missing,
malformed, unknown, tampered and revoked keys get 401 (and write nothing); the operational routes
are open."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.core.clock import system_clock
from service.store.sqlite import SqliteStore
from service.usecases import create_api_key, revoke_api_key
from tests.backends import reader
from tests.conftest import Caller, MakeCaller

TASK = "task_01J00000000000000000000000"
V1_ROUTES = [
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks"),
    ("GET", f"/v1/tasks/{TASK}"),
    ("GET", f"/v1/tasks/{TASK}/timeline"),
    ("GET", "/v1/account"),
    ("GET", "/v1/account/ledger"),
]
BODY: dict[str, Any] = {"prompt": "a cat", "model": "nano-banana-fast"}
WELL_SHAPED_UNKNOWN = "thk_0123456789ab_" + "A" * 43


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["field"] is None
    assert body["error"]["message"]


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    if method == "POST":
        return await client.post(path, json=BODY, headers=headers)
    return await client.request(method, path, headers=headers)


async def count_tasks(store: SqliteStore) -> int:
    async with reader(store).execute("SELECT COUNT(*) FROM tasks") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
async def test_missing_authorization_is_401_on_every_v1_route(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_401(await call(client, method, path, {}))


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
async def test_valid_key_is_accepted_on_every_v1_route(
    client: httpx.AsyncClient, caller: Caller, method: str, path: str
) -> None:
    response = await call(client, method, path, caller.headers)
    assert response.status_code in (200, 202, 404), response.text  # 404: the made-up task id


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token {key}",
        "{key}",
        "Bearer: {key}",
        "Bearer nope",
        "Bearer thk_",
        "Bearer " + WELL_SHAPED_UNKNOWN,
        "Bearer {key}x",
        "Bearer x{key}",
        "Bearer {key} {key}",
        "Bearer {upper}",
    ],
)
async def test_bad_authorization_is_401(
    client: httpx.AsyncClient, caller: Caller, header: str
) -> None:
    value = header.format(key=caller.key, upper=caller.key.upper())
    for method, path in V1_ROUTES:
        assert_401(await call(client, method, path, {"Authorization": value}))


async def test_tampered_secret_with_a_real_prefix_is_401(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    last = caller.key[-1]
    tampered = caller.key[:-1] + ("A" if last != "A" else "B")
    assert tampered != caller.key

    response = await client.get("/v1/account", headers={"Authorization": f"Bearer {tampered}"})

    assert_401(response)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_scheme_is_case_insensitive(
    client: httpx.AsyncClient, caller: Caller, scheme: str
) -> None:
    response = await client.get("/v1/account", headers={"Authorization": f"{scheme} {caller.key}"})
    assert response.status_code == 200


async def test_unknown_and_bad_keys_get_the_same_answer(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    """No hint whether a prefix exists: unknown and tampered keys are indistinguishable."""
    tampered = caller.key[:-1] + ("A" if caller.key[-1] != "A" else "B")
    bodies = set()
    for key in (WELL_SHAPED_UNKNOWN, tampered, "garbage"):
        response = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        bodies.add(response.text)
    assert len(bodies) == 1


async def test_revoked_key_is_401_and_other_keys_still_work(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    record, raw = await create_api_key(store, system_clock, caller.account_id)
    revoked = {"Authorization": f"Bearer {raw}"}
    assert (await client.get("/v1/account", headers=revoked)).status_code == 200

    await revoke_api_key(store, system_clock, record.id)

    for method, path in V1_ROUTES:
        assert_401(await call(client, method, path, revoked))
    assert (await client.get("/v1/account", headers=caller.headers)).status_code == 200


async def test_a_second_key_sees_the_same_account(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    _, raw = await create_api_key(store, system_clock, caller.account_id)
    task = (await client.post("/v1/tasks", json=BODY, headers=caller.headers)).json()

    response = await client.get(
        f"/v1/tasks/{task['id']}", headers={"Authorization": f"Bearer {raw}"}
    )

    assert response.status_code == 200


async def test_unauthenticated_post_writes_nothing_and_auth_comes_first(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    """No key: 401, even when the body is also wrong (no hint about what else is wrong)."""
    for content, content_type in (
        (b'{"prompt": "a cat", "model": "nano-banana"}', "application/json"),
        (b"not json", "application/json"),
        (b"prompt=a cat", "text/plain"),
        (b" " * (2 * 1024 * 1024), "application/json"),
    ):
        response = await client.post(
            "/v1/tasks",
            content=content,
            headers={"Content-Type": content_type, "Authorization": "Bearer nope"},
        )
        assert_401(response)
    assert await count_tasks(store) == 0


async def test_keys_of_one_account_do_not_reach_another(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice", credits=5)
    bob = await make_caller(name="bob", credits=7)

    a = (await client.get("/v1/account", headers=alice.headers)).json()
    b = (await client.get("/v1/account", headers=bob.headers)).json()

    assert (a["id"], a["name"], a["balance_credits"]) == (alice.account_id, "alice", 5)
    assert (b["id"], b["name"], b["balance_credits"]) == (bob.account_id, "bob", 7)


# --- open routes ----------------------------------------------------------------------------


async def test_healthz_is_200_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_is_200_ok_when_the_database_is_writable(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_openapi_is_served_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


async def test_every_response_carries_a_request_id(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    ok = await client.get("/v1/account", headers=caller.headers)
    denied = await client.get("/v1/account")
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})

    assert ok.headers["x-request-id"]
    assert denied.headers["x-request-id"]
    assert ok.headers["x-request-id"] != denied.headers["x-request-id"]
    assert echoed.headers["x-request-id"] == "trace-123"
