"""``GET /openapi.json``: a valid OpenAPI document that matches the route table exactly, and whose
schemas describe what the server really sends (checked by validating real responses)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker, validate
from openapi_spec_validator import validate as validate_spec
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from service.settings import Settings
from tests.conftest import Caller, MakeCaller

VERBS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json", "/assets/{asset_id}"}


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in VERBS
    }


def route_table(app: Starlette) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/simulator":
            continue  # the built-in provider simulator speaks Kie's API, not ours
        assert isinstance(route, Route), f"not described by this test: {route!r}"
        assert route.methods is not None
        table.setdefault(route.path, set()).update(m.lower() for m in route.methods - {"HEAD"})
    return table


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def check(spec: dict[str, Any], instance: Any, schema: dict[str, Any]) -> None:
    """Validate ``instance`` against ``schema`` (refs resolved in the spec's components)."""
    validate(
        instance,
        {**schema, "components": spec["components"]},
        cls=OAS31Validator,
        format_checker=oas31_format_checker,
    )


def conforms(spec: dict[str, Any], instance: Any, schema: dict[str, Any]) -> bool:
    validator = OAS31Validator(
        {**schema, "components": spec["components"]}, format_checker=oas31_format_checker
    )
    return bool(validator.is_valid(instance))


def component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def check_response(spec: dict[str, Any], response: httpx.Response, path: str, method: str) -> None:
    """The status is documented for this operation and the body matches its schema."""
    check(spec, response.json(), response_schema(spec, path, method, response.status_code))


# --- the document -----------------------------------------------------------------------------


async def test_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")


async def test_every_route_is_documented_with_its_methods(
    spec: dict[str, Any], app: Starlette
) -> None:
    documented = {path: {m for m in item if m in VERBS} for path, item in spec["paths"].items()}

    assert route_table(app) == documented


async def test_path_parameters_are_declared(spec: dict[str, Any]) -> None:
    for (path, method), op in operations(spec).items():
        names = set(re.findall(r"{([^}]+)}", path))
        declared = {
            p["name"]
            for p in [*spec["paths"][path].get("parameters", []), *op.get("parameters", [])]
            if p["in"] == "path"
        }
        assert names == declared, (method, path)
        for p in op.get("parameters", []):
            if p["in"] == "path":
                assert p["required"] is True


async def test_every_v1_operation_requires_a_key_and_documents_401(spec: dict[str, Any]) -> None:
    v1 = {k: op for k, op in operations(spec).items() if k[0].startswith("/v1/")}
    assert v1
    for (path, method), op in v1.items():
        security = op.get("security", spec.get("security"))
        assert security, f"{method.upper()} {path} has no security requirement"
        assert "401" in op["responses"], f"{method.upper()} {path} does not document 401"
        check(
            spec,
            {"error": {"code": "x", "message": "y", "field": None}},
            response_schema(spec, path, method, 401),
        )


async def test_open_routes_are_documented_as_open(spec: dict[str, Any]) -> None:
    for (path, _method), op in operations(spec).items():
        if path in OPEN_PATHS:
            assert op.get("security") == []


async def test_every_error_response_uses_the_error_schema(spec: dict[str, Any]) -> None:
    for (path, method), op in operations(spec).items():
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and path not in OPEN_PATHS:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


async def test_enums_follow_the_config(spec: dict[str, Any], settings: Settings) -> None:
    create = component(spec, "TaskCreate")["properties"]
    assert create["model"]["enum"] == list(settings.pricing.models)
    # optional, so null (its default) is allowed too
    assert create["provider"]["enum"] == [*settings.tasks.providers, None]
    listing = {p["name"]: p for p in spec["paths"]["/v1/tasks"]["get"]["parameters"]}
    assert listing["model"]["schema"]["enum"] == list(settings.pricing.models)
    assert listing["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}


# --- the schemas against real responses -------------------------------------------------------


async def test_a_real_task_matches_the_task_schema(
    spec: dict[str, Any], client: httpx.AsyncClient, caller: Caller
) -> None:
    body = {
        "prompt": "a red fox",
        "model": "nano-banana-2",
        "images": ["https://example.com/in.png"],
        "resolution": "4k",
        "seed": 7,
        "metadata": {"a": [1, 2]},
    }
    check(spec, body, component(spec, "TaskCreate"))

    created = await client.post("/v1/tasks", json=body, headers=caller.headers)
    task_id = created.json()["id"]
    fetched = await client.get(f"/v1/tasks/{task_id}", headers=caller.headers)
    listed = await client.get("/v1/tasks", headers=caller.headers)
    timeline = await client.get(f"/v1/tasks/{task_id}/timeline", headers=caller.headers)

    check_response(spec, created, "/v1/tasks", "post")
    check_response(spec, fetched, "/v1/tasks/{task_id}", "get")
    check_response(spec, listed, "/v1/tasks", "get")
    check_response(spec, timeline, "/v1/tasks/{task_id}/timeline", "get")
    task_schema = component(spec, "Task")
    # the validator is live: a wrong status or a non-RFC 3339 time would be caught
    assert not conforms(spec, {**fetched.json(), "status": "done"}, task_schema)
    assert not conforms(spec, {**fetched.json(), "created_at": "yesterday"}, task_schema)
    assert set(fetched.json()) == set(task_schema["properties"]) == set(task_schema["required"])
    entry_schema = component(spec, "TimelineEntry")
    assert set(timeline.json()["data"][0]) == set(entry_schema["properties"])


async def test_real_account_and_ledger_match_their_schemas(
    spec: dict[str, Any], client: httpx.AsyncClient, caller: Caller
) -> None:
    await client.post(
        "/v1/tasks", json={"prompt": "a cat", "model": "nano-banana"}, headers=caller.headers
    )

    account = await client.get("/v1/account", headers=caller.headers)
    ledger = await client.get("/v1/account/ledger", params={"limit": 1}, headers=caller.headers)

    check_response(spec, account, "/v1/account", "get")
    check_response(spec, ledger, "/v1/account/ledger", "get")
    assert set(account.json()) == set(component(spec, "Account")["properties"])
    assert set(ledger.json()["data"][0]) == set(component(spec, "CreditEntry")["properties"])
    assert isinstance(ledger.json()["next_cursor"], str)


async def test_ops_routes_match_their_documented_status(
    spec: dict[str, Any], client: httpx.AsyncClient
) -> None:
    for path in OPEN_PATHS:
        check_response(spec, await client.get(path), path, "get")


async def test_real_errors_are_documented_and_match_the_error_schema(
    spec: dict[str, Any], client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=10)
    other = await make_caller(name="other")
    theirs = (
        await client.post(
            "/v1/tasks", json={"prompt": "a cat", "model": "nano-banana"}, headers=other.headers
        )
    ).json()["id"]
    good = {"prompt": "a cat", "model": "nano-banana-fast"}
    hdr = {**who.headers, "Content-Type": "application/json"}

    cases: list[tuple[str, str, httpx.Response, int]] = [
        ("/v1/tasks", "post", await client.post("/v1/tasks", content=b"{", headers=hdr), 400),
        ("/v1/tasks", "post", await client.post("/v1/tasks", json=good), 401),
        (
            "/v1/tasks",
            "post",
            await client.post(
                "/v1/tasks", json={**good, "model": "nano-banana-pro"}, headers=who.headers
            ),
            402,
        ),
        (
            "/v1/tasks",
            "post",
            await client.post(
                "/v1/tasks",
                content=b" " * (1024 * 1024 + 1),
                headers=hdr,
            ),
            413,
        ),
        (
            "/v1/tasks",
            "post",
            await client.post("/v1/tasks", content=json.dumps(good).encode(), headers=who.headers),
            415,
        ),
        (
            "/v1/tasks",
            "post",
            await client.post("/v1/tasks", json={"prompt": "a cat"}, headers=who.headers),
            422,
        ),
        (
            "/v1/tasks",
            "post",
            await client.post(
                "/v1/tasks", json={**good, "prompt": "a nude portrait"}, headers=who.headers
            ),
            422,
        ),
        (
            "/v1/tasks",
            "get",
            await client.get("/v1/tasks", params={"cursor": "zzz"}, headers=who.headers),
            400,
        ),
        ("/v1/tasks", "get", await client.get("/v1/tasks"), 401),
        (
            "/v1/tasks",
            "get",
            await client.get("/v1/tasks", params={"limit": "0"}, headers=who.headers),
            422,
        ),
        (
            "/v1/tasks/{task_id}",
            "get",
            await client.get(f"/v1/tasks/{theirs}", headers=who.headers),
            404,
        ),
        (
            "/v1/tasks/{task_id}/timeline",
            "get",
            await client.get("/v1/tasks/nope/timeline", headers=who.headers),
            404,
        ),
        ("/v1/account", "get", await client.get("/v1/account"), 401),
        (
            "/v1/account/ledger",
            "get",
            await client.get("/v1/account/ledger", params={"limit": "x"}, headers=who.headers),
            400,
        ),
    ]
    idem = {**who.headers, "Idempotency-Key": "k"}
    await client.post("/v1/tasks", json=good, headers=idem)
    conflict = await client.post("/v1/tasks", json={**good, "seed": 1}, headers=idem)
    cases.append(("/v1/tasks", "post", conflict, 409))

    error_schema = component(spec, "Error")
    for path, method, response, status in cases:
        assert response.status_code == status, (path, method, response.text)
        check_response(spec, response, path, method)
        check(spec, response.json(), error_schema)
        assert set(response.json()["error"]) == set(
            error_schema["properties"]["error"]["properties"]
        )

    # errors from outside any operation (unknown route, wrong method) have the same shape
    for response in (
        await client.get("/v1/nope", headers=who.headers),
        await client.delete("/v1/account", headers=who.headers),
    ):
        check(spec, response.json(), error_schema)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "a cat"},
        {"prompt": "a cat", "model": "dall-e-3"},
        {"prompt": "a cat", "model": "nano-banana", "num_images": 5},
        {"prompt": "a cat", "model": "nano-banana", "seed": -1},
        {"prompt": "a cat", "model": "nano-banana", "resolutoin": "2k"},
        {"prompt": "", "model": "nano-banana"},
        {"prompt": "a cat", "model": "nano-banana", "images": ["u"] * 15},
        {"prompt": "a cat", "model": "nano-banana", "aspect_ratio": "7:3"},
    ],
)
async def test_bodies_the_schema_refuses_are_refused_by_the_server(
    spec: dict[str, Any], client: httpx.AsyncClient, caller: Caller, body: dict[str, Any]
) -> None:
    assert not conforms(spec, body, component(spec, "TaskCreate"))

    response = await client.post("/v1/tasks", json=body, headers=caller.headers)

    assert response.status_code == 422
