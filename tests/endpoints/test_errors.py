"""Every way an endpoint request can be refused, each in the contract's error shape, writing
nothing: validation (422 with the field), unsafe targets, keys (401), other accounts (404)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tests.api.test_errors import assert_error
from tests.conftest import Caller, MakeCaller, settings_env
from tests.endpoints.conftest import HOOK, Api, rows

PATHS = ("", "/rotate-secret", "/test")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://127.0.0.1/hook"}, "url"),
        ({"url": "http://127.0.0.1:9/" + "a" * 2048}, "url"),
        ({"url": HOOK, "description": "d" * 501}, "description"),
        ({"url": HOOK, "event_types": []}, "event_types"),
        ({"url": HOOK, "event_types": ["task.finished"]}, "event_types"),
        ({"url": HOOK, "event_types": ["ping", "ping"]}, "event_types"),
        ({"url": HOOK, "secret": "whsec_%%%"}, "secret"),
        ({"url": HOOK, "enabled": True}, "enabled"),
        ({"url": HOOK, "secrets": "x"}, "secrets"),
        (["not", "an", "object"], None),
    ],
)
async def test_invalid_create_is_422_naming_the_field(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, body: Any, field: str | None
) -> None:
    response = await client.post("/v1/endpoints", json=body, headers=caller.headers)

    assert_error(response, 422, "validation_error", field)
    assert await rows(store, "SELECT id FROM endpoints") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": None}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"description": 3}, "description"),
        ({"event_types": "task.failed"}, "event_types"),
        ({"enabled": "false"}, "enabled"),
        ({"secret": "whsec_AAAA"}, "secret"),
        ("enabled", None),
    ],
)
async def test_invalid_patch_is_422_naming_the_field_and_changes_nothing(
    api: Api, caller: Caller, body: Any, field: str | None
) -> None:
    created = await api.create(caller)

    assert_error(await api.patch(caller, created["id"], body), 422, "validation_error", field)
    unchanged = (await api.get(caller, created["id"])).json()
    assert unchanged == {k: v for k, v in created.items() if k != "secret"}


@pytest.mark.parametrize("url", ["http://user:pw@127.0.0.1:9/hook", "http://127.0.0.1:0/"])
async def test_urls_the_target_guard_refuses_are_unsafe_target(
    client: httpx.AsyncClient, caller: Caller, url: str
) -> None:
    response = await client.post("/v1/endpoints", json={"url": url}, headers=caller.headers)
    assert_error(response, 422, "unsafe_target", "url")


async def test_malformed_and_wrong_media_type_bodies(
    client: httpx.AsyncClient, caller: Caller, api: Api
) -> None:
    created = await api.create(caller)
    json_headers = {**caller.headers, "Content-Type": "application/json"}
    for path, method in (("/v1/endpoints", "POST"), (f"/v1/endpoints/{created['id']}", "PATCH")):
        bad = await client.request(method, path, content=b"{", headers=json_headers)
        assert_error(bad, 400, "malformed_request")
        text = await client.request(method, path, content=b"{}", headers=caller.headers)
        assert_error(text, 415, "unsupported_media_type")


@pytest.mark.parametrize("suffix", PATHS)
async def test_unknown_and_malformed_ids_are_404(
    client: httpx.AsyncClient, caller: Caller, suffix: str
) -> None:
    for endpoint_id in ("ep_01JD0Q0000000000000000000A", "nope", "task_01JD0Q0000000000000000000A"):
        path = f"/v1/endpoints/{endpoint_id}{suffix}"
        method = "GET" if not suffix else "POST"
        assert_error(
            await client.request(method, path, headers=caller.headers),
            404,
            "not_found",
            "endpoint_id",
        )


async def test_another_accounts_endpoint_is_404_and_untouched(
    api: Api, client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    owner, stranger = await make_caller(), await make_caller(name="stranger")
    created = await api.create(owner)
    path = f"/v1/endpoints/{created['id']}"
    before = await rows(store, "SELECT secret, previous_secret FROM endpoints")

    answers = [
        await client.get(path, headers=stranger.headers),
        await client.patch(path, json={"enabled": False}, headers=stranger.headers),
        await client.delete(path, headers=stranger.headers),
        await client.post(f"{path}/rotate-secret", headers=stranger.headers),
        await client.post(f"{path}/test", headers=stranger.headers),
    ]

    for answer in answers:
        assert_error(answer, 404, "not_found", "endpoint_id")
    assert (await api.get(owner, created["id"])).json()["enabled"] is True
    # the row as it was: the same sealed secret, no previous one
    assert await rows(store, "SELECT secret, previous_secret FROM endpoints") == before
    assert before[0]["previous_secret"] is None
    endpoint = await store.get_endpoint(owner.account_id, created["id"])
    assert endpoint is not None
    assert endpoint.secret == created["secret"]
    assert await rows(store, "SELECT id FROM events") == []
    assert await rows(store, "SELECT id FROM deliveries") == []


async def test_every_route_wants_a_valid_key(
    api: Api, client: httpx.AsyncClient, caller: Caller
) -> None:
    created = await api.create(caller)
    one = f"/v1/endpoints/{created['id']}"
    calls = [
        ("POST", "/v1/endpoints"),
        ("GET", "/v1/endpoints"),
        ("GET", one),
        ("PATCH", one),
        ("DELETE", one),
        ("POST", f"{one}/rotate-secret"),
        ("POST", f"{one}/test"),
    ]
    for headers in ({}, {"Authorization": "Bearer th_wrong_key"}, {"Authorization": "Basic x"}):
        for method, path in calls:
            response = await client.request(method, path, json={"url": HOOK}, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.get(caller, created["id"])).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"), [({"cursor": "zzz"}, "cursor"), ({"limit": "x"}, "limit")]
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, caller: Caller, params: dict[str, str], field: str
) -> None:
    response = await client.get("/v1/endpoints", params=params, headers=caller.headers)
    assert_error(response, 400, "malformed_request", field)


async def test_a_cursor_pages_by_time_in_any_list(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    # Cursors name an instant (see core/pagination.py): a task cursor on endpoints is accepted
    # and shows only the caller's endpoints older than that instant (here: none yet).
    for _ in range(2):
        await client.post(
            "/v1/tasks", json={"prompt": "a cat", "model": "nano-banana"}, headers=caller.headers
        )
    cursor = (await client.get("/v1/tasks?limit=1", headers=caller.headers)).json()["next_cursor"]

    response = await client.get("/v1/endpoints", params={"cursor": cursor}, headers=caller.headers)

    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": None}


#: what the production client's DNS answers (any other name does not exist)
FAKE_DNS = {"public.example": ["93.184.215.14"], "inside.example": ["93.184.215.14", "10.1.2.3"]}


async def fake_dns(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


@pytest.fixture
async def production_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Caller]]:
    """The dev config, but with the production target policy: no private networks at all;
    names resolve as ``FAKE_DNS`` says."""
    settings = load_settings(settings_env(tmp_path, TASKHOOK__DELIVERY__ALLOWED_NETWORKS=""))
    assert settings.delivery.allowed_networks == ()
    app = create_app(settings, run_workers=False)
    services = app.state.services
    app.state.services = replace(services, endpoints=replace(services.endpoints, resolve=fake_dns))
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        account = await create_account(store, system_clock, "prod", 0)
        _, key = await create_api_key(store, system_clock, account.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, Caller(account.id, key)


@pytest.mark.parametrize(
    "url",
    [
        HOOK,
        "http://localhost:8080/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
    ],
)
async def test_production_policy_refuses_private_targets(
    production_client: tuple[httpx.AsyncClient, Caller], url: str
) -> None:
    client, who = production_client

    response = await client.post("/v1/endpoints", json={"url": url}, headers=who.headers)

    assert_error(response, 422, "unsafe_target", "url")
    listed = await client.get("/v1/endpoints", headers=who.headers)
    assert listed.json()["data"] == []


async def test_production_policy_checks_a_patched_url_too(
    production_client: tuple[httpx.AsyncClient, Caller],
) -> None:
    client, who = production_client
    created = await client.post(
        "/v1/endpoints", json={"url": "https://93.184.215.14/hook"}, headers=who.headers
    )
    assert created.status_code == 201, created.text
    path = f"/v1/endpoints/{created.json()['id']}"

    refused = await client.patch(path, json={"url": HOOK}, headers=who.headers)

    assert_error(refused, 422, "unsafe_target", "url")
    assert (await client.get(path, headers=who.headers)).json()[
        "url"
    ] == "https://93.184.215.14/hook"
    # an unchanged URL is not re-checked: other fields stay editable
    same = await client.patch(
        path, json={"url": "https://93.184.215.14/hook", "description": "d"}, headers=who.headers
    )
    assert same.status_code == 200


async def test_production_policy_accepts_a_name_that_does_not_resolve_yet(
    production_client: tuple[httpx.AsyncClient, Caller],
) -> None:
    # Registration does not wait for the subscriber's DNS: the connect-time guard judges what
    # the name resolves to at every send.
    client, who = production_client

    created = await client.post(
        "/v1/endpoints", json={"url": "https://not-live-yet.example/hook"}, headers=who.headers
    )

    assert created.status_code == 201, created.text
    assert created.json()["url"] == "https://not-live-yet.example/hook"


async def test_production_policy_refuses_a_name_resolving_inside_on_create_and_patch(
    production_client: tuple[httpx.AsyncClient, Caller],
) -> None:
    client, who = production_client

    refused = await client.post(
        "/v1/endpoints", json={"url": "https://inside.example/hook"}, headers=who.headers
    )
    public = await client.post(
        "/v1/endpoints", json={"url": "https://public.example/hook"}, headers=who.headers
    )
    assert public.status_code == 201, public.text
    patched = await client.patch(
        f"/v1/endpoints/{public.json()['id']}",
        json={"url": "https://inside.example/other"},
        headers=who.headers,
    )

    for answer in (refused, patched):
        assert_error(answer, 422, "unsafe_target", "url")
        assert "10.1.2.3" not in answer.text  # internal DNS answers are never echoed
