"""Every error the API can answer, over real HTTP, each in the contract's exact shape
``{"error": {"code", "message", "field"}}`` — and a refused request writes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.core.pagination import PageRequest
from service.settings import Settings
from service.store.base import DecisionFilter, ModerationDecision
from service.store.sqlite import SqliteStore
from tests.backends import reader
from tests.conftest import Caller, MakeCaller

ERROR_KEYS = {"code", "message", "field"}
GOOD: dict[str, Any] = {
    "prompt": "a red fox in the snow",
    "model": "nano-banana",
    "resolution": "2k",
}
TABLES = (
    "tasks",
    "credit_entries",
    "timeline",
    "events",
    "idempotency_keys",
    "moderation_decisions",
)


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS, body
    assert error["code"] == code, body
    assert error["field"] == field, body
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    return error


def json_headers(who: Caller, **extra: str) -> dict[str, str]:
    return {**who.headers, "Content-Type": "application/json", **extra}


async def post_raw(
    client: httpx.AsyncClient, who: Caller, content: bytes, **headers: str
) -> httpx.Response:
    return await client.post("/v1/tasks", content=content, headers=json_headers(who, **headers))


async def row_counts(store: SqliteStore) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        async with reader(store).execute(f"SELECT COUNT(*) FROM {table}") as cursor:  # noqa: S608
            row = await cursor.fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


async def decisions_of(store: SqliteStore, account_id: str) -> list[ModerationDecision]:
    return await store.list_moderation_decisions(DecisionFilter(account_id), PageRequest(100))


async def balance(client: httpx.AsyncClient, who: Caller) -> int:
    response = await client.get("/v1/account", headers=who.headers)
    assert response.status_code == 200
    value: int = response.json()["balance_credits"]
    return value


@pytest.fixture
async def lenient_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client``, but an app crash comes back as the 500 a real client would see."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# --- 400 malformed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   ",
        b"{",
        b'{"prompt": "a cat",}',
        b"{'prompt': 'a cat'}",
        b'{"prompt": "a cat"} {"prompt": "a dog"}',
        b'{"prompt": "a cat", "model": nano-banana}',
        b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),  # a UTF-8 BOM is not JSON
        b"\xff\xfe{}",  # not UTF-8
        b'{"prompt": "caf\xe9", "model": "nano-banana"}',  # latin-1, not UTF-8
        b'{"prompt": "\xed\xa0\x80", "model": "nano-banana"}',  # an encoded surrogate
        b'{"prompt": "a cat", "model": "nano-banana", "seed": NaN}',
        b'{"prompt": "a cat", "model": "nano-banana", "seed": Infinity}',
        b'{"prompt": "a cat", "model": "nano-banana", "seed": 1e400}',
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"x": -Infinity}}',
        b'{"prompt": "a cat", "model": "nano-banana", "seed": 1' + b"0" * 5000 + b"}",
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"n": ' + b"9" * 4301 + b"}}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda c: repr(c[:40]),
)
async def test_malformed_body_is_400(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, content: bytes
) -> None:
    before = await row_counts(store)

    response = await post_raw(client, caller, content)

    assert_error(response, 400, "malformed_request")
    assert await row_counts(store) == before


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k" * 256,
        "tab\there",
        "bell\x07",
    ],
)
async def test_bad_idempotency_key_is_400(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, key: str
) -> None:
    before = await row_counts(store)

    response = await post_raw(client, caller, json.dumps(GOOD).encode(), **{"Idempotency-Key": key})

    assert_error(response, 400, "malformed_request", "Idempotency-Key")
    assert await row_counts(store) == before


async def test_non_ascii_idempotency_key_is_400(client: httpx.AsyncClient, caller: Caller) -> None:
    headers = [
        (b"authorization", caller.headers["Authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"idempotency-key", "clé".encode("latin-1")),
    ]
    response = await client.post("/v1/tasks", content=json.dumps(GOOD).encode(), headers=headers)

    assert_error(response, 400, "malformed_request", "Idempotency-Key")


async def test_longest_idempotency_key_is_accepted(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    key = "k" * 255
    response = await post_raw(client, caller, json.dumps(GOOD).encode(), **{"Idempotency-Key": key})
    assert response.status_code == 202


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/account/ledger"])
@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "not-a-cursor"}, "cursor"), ({"limit": "ten"}, "limit")],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, caller: Caller, path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params, headers=caller.headers)
    assert_error(response, 400, "malformed_request", field)


async def test_non_numeric_content_length_is_400(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await post_raw(client, caller, b"{}", **{"Content-Length": "abc"})
    assert_error(response, 400, "malformed_request")


# --- 402 insufficient credits ---------------------------------------------------------------


async def test_insufficient_credits_is_402_and_writes_only_its_screening_decision(
    client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    who = await make_caller(credits=22)
    before = await row_counts(store)

    response = await client.post(
        "/v1/tasks", json=GOOD, headers={**who.headers, "Idempotency-Key": "poor-1"}
    )

    error = assert_error(response, 402, "insufficient_credits")
    assert "23" in error["message"]
    # the prompt was screened before the charge was refused: that decision is kept
    assert await row_counts(store) == {**before, "moderation_decisions": 1}
    assert await balance(client, who) == 22
    ledger = (await client.get("/v1/account/ledger", headers=who.headers)).json()["data"]
    assert [e["kind"] for e in ledger] == ["grant"]
    assert (await client.get("/v1/tasks", headers=who.headers)).json()["data"] == []


async def test_zero_balance_is_402(client: httpx.AsyncClient, make_caller: MakeCaller) -> None:
    who = await make_caller(credits=0)
    response = await client.post(
        "/v1/tasks", json={"prompt": "a cat", "model": "nano-banana-fast"}, headers=who.headers
    )
    assert_error(response, 402, "insufficient_credits")
    assert await balance(client, who) == 0


# --- 404 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/v1/tasks/task_01J00000000000000000000000", "/v1/tasks/garbage", "/v1/tasks/x/timeline"],
)
async def test_unknown_task_is_404(client: httpx.AsyncClient, caller: Caller, path: str) -> None:
    response = await client.get(path, headers=caller.headers)
    assert_error(response, 404, "not_found", "id")


async def test_another_accounts_task_is_404(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    owner = await make_caller(name="owner")
    other = await make_caller(name="other")
    task = (await client.post("/v1/tasks", json=GOOD, headers=owner.headers)).json()

    for path in (f"/v1/tasks/{task['id']}", f"/v1/tasks/{task['id']}/timeline"):
        response = await client.get(path, headers=other.headers)
        assert_error(response, 404, "not_found", "id")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v2/tasks"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/tasks/x/y/z"),
        ("GET", "/v1/account/ledger/extra"),
        ("GET", "/v1/tasks/"),  # no redirect to the slash-less route: a 404 in our shape
    ],
)
async def test_unknown_route_is_404(
    client: httpx.AsyncClient, caller: Caller, method: str, path: str
) -> None:
    for headers in (caller.headers, {}):
        response = await client.request(method, path, headers=headers)
        assert_error(response, 404, "not_found")


# --- 405 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/tasks/task_01J00000000000000000000000", {"GET"}),
        ("DELETE", "/v1/tasks/task_01J00000000000000000000000", {"GET"}),
        ("POST", "/v1/tasks/task_01J00000000000000000000000/timeline", {"GET"}),
        ("POST", "/v1/account", {"GET"}),
        ("DELETE", "/v1/account/ledger", {"GET"}),
        ("POST", "/healthz", {"GET"}),
        ("PATCH", "/openapi.json", {"GET"}),
    ],
)
async def test_wrong_method_is_405(
    client: httpx.AsyncClient, caller: Caller, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=caller.headers)

    assert_error(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}


async def test_wrong_method_on_tasks_collection_is_405(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.request("PUT", "/v1/tasks", headers=caller.headers)
    assert_error(response, 405, "method_not_allowed")


async def test_405_on_tasks_collection_allows_get_and_post(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.request("PUT", "/v1/tasks", headers=caller.headers)

    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


# --- 409 ----------------------------------------------------------------------------------


async def test_same_idempotency_key_with_another_body_is_409_and_writes_nothing(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    headers = {**caller.headers, "Idempotency-Key": "order-9"}
    first = await client.post("/v1/tasks", json=GOOD, headers=headers)
    assert first.status_code == 202
    before = await row_counts(store)
    money = await balance(client, caller)

    for other in (
        {**GOOD, "prompt": "a blue fox"},
        {**GOOD, "resolution": "1k"},
        {**GOOD, "num_images": 1},  # the default, spelt out: still another body
        {"prompt": "x"},  # not even valid: the key decides first
    ):
        response = await client.post("/v1/tasks", json=other, headers=headers)
        assert_error(response, 409, "idempotency_conflict", "Idempotency-Key")

    assert await row_counts(store) == before
    assert await balance(client, caller) == money
    replay = await client.post("/v1/tasks", json=GOOD, headers=headers)
    assert replay.json()["id"] == first.json()["id"]


# --- 413 ----------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid task body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    core = json.dumps(GOOD).encode()
    assert size >= len(core)
    return core + b" " * (size - len(core))


async def test_body_over_the_limit_with_content_length_is_413(
    client: httpx.AsyncClient, caller: Caller, settings: Settings, store: SqliteStore
) -> None:
    limit = settings.api.max_body_bytes
    assert limit == 1024 * 1024
    before = await row_counts(store)

    response = await post_raw(client, caller, padded(limit + 1))

    assert_error(response, 413, "payload_too_large")
    assert await row_counts(store) == before


async def test_declared_content_length_alone_is_refused(
    client: httpx.AsyncClient, caller: Caller, settings: Settings
) -> None:
    """A huge Content-Length is refused from the header, before any body is read."""
    response = await post_raw(
        client, caller, b"{}", **{"Content-Length": str(settings.api.max_body_bytes * 1000)}
    )
    assert_error(response, 413, "payload_too_large")


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, caller: Caller, settings: Settings, store: SqliteStore
) -> None:
    body = padded(settings.api.max_body_bytes + 1)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), 64 * 1024):
            sent += 1
            yield body[start : start + 64 * 1024]

    before = await row_counts(store)

    response = await client.post("/v1/tasks", content=chunks(), headers=json_headers(caller))

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    assert await row_counts(store) == before


async def test_endless_stream_is_cut_off_with_413(
    client: httpx.AsyncClient, caller: Caller, settings: Settings
) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"pad": "'
        while True:
            pulled += 1
            yield b"a" * 65536

    response = await client.post("/v1/tasks", content=endless(), headers=json_headers(caller))

    assert_error(response, 413, "payload_too_large")
    assert pulled * 65536 <= settings.api.max_body_bytes + 2 * 65536


@pytest.mark.parametrize("streamed", [False, True])
async def test_body_exactly_at_the_limit_is_accepted(
    client: httpx.AsyncClient, caller: Caller, settings: Settings, streamed: bool
) -> None:
    body = padded(settings.api.max_body_bytes)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    content: bytes | AsyncIterator[bytes] = chunks() if streamed else body
    response = await client.post("/v1/tasks", content=content, headers=json_headers(caller))

    assert response.status_code == 202, response.text


# --- 415 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/jsonx",
        "text/json",
    ],
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, content_type: str | None
) -> None:
    headers = dict(caller.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = await row_counts(store)

    response = await client.post("/v1/tasks", content=json.dumps(GOOD).encode(), headers=headers)

    assert_error(response, 415, "unsupported_media_type")
    assert await row_counts(store) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json ;x=y",
    ],
)
async def test_json_content_type_variants_are_accepted(
    client: httpx.AsyncClient, caller: Caller, content_type: str
) -> None:
    headers = {**caller.headers, "Content-Type": content_type}
    response = await client.post("/v1/tasks", content=json.dumps(GOOD).encode(), headers=headers)
    assert response.status_code == 202, response.text


# --- 422 validation -------------------------------------------------------------------------

URL = "https://example.com/in.png"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ("a cat", None),
        (None, None),
        (42, None),
        ({**GOOD, "resolutoin": "2k"}, "resolutoin"),
        ({"model": "nano-banana"}, "prompt"),
        ({**GOOD, "prompt": None}, "prompt"),
        ({**GOOD, "prompt": 42}, "prompt"),
        ({**GOOD, "prompt": ["a cat"]}, "prompt"),
        ({**GOOD, "prompt": ""}, "prompt"),
        ({**GOOD, "prompt": "   \n\t "}, "prompt"),
        ({**GOOD, "prompt": "a" * 5001}, "prompt"),
        ({"prompt": "a cat"}, "model"),
        ({**GOOD, "model": "dall-e-3"}, "model"),
        ({**GOOD, "model": "Nano-Banana"}, "model"),
        ({**GOOD, "model": 1}, "model"),
        ({**GOOD, "type": "image-to-video"}, "type"),
        ({**GOOD, "type": "edit"}, "images"),
        ({**GOOD, "type": "edit", "images": []}, "images"),
        ({**GOOD, "type": "text-to-image", "images": [URL]}, "images"),
        ({**GOOD, "images": URL}, "images"),
        ({**GOOD, "images": [URL] * 15}, "images"),
        ({**GOOD, "images": ["ftp://example.com/a.png"]}, "images"),
        ({**GOOD, "images": ["javascript:alert(1)"]}, "images"),
        ({**GOOD, "images": ["https://"]}, "images"),
        ({**GOOD, "images": [{"url": URL}]}, "images"),
        ({**GOOD, "images": ["https://example.com/" + "a" * 2048]}, "images"),
        ({**GOOD, "aspect_ratio": "7:3"}, "aspect_ratio"),
        ({**GOOD, "aspect_ratio": 1.5}, "aspect_ratio"),
        ({**GOOD, "resolution": "8k"}, "resolution"),
        ({**GOOD, "resolution": "2K"}, "resolution"),
        ({**GOOD, "output_format": "webp"}, "output_format"),
        ({**GOOD, "num_images": 0}, "num_images"),
        ({**GOOD, "num_images": 5}, "num_images"),
        ({**GOOD, "num_images": True}, "num_images"),
        ({**GOOD, "num_images": 2.5}, "num_images"),
        ({**GOOD, "num_images": "2"}, "num_images"),
        ({**GOOD, "seed": -1}, "seed"),
        ({**GOOD, "seed": 2**32}, "seed"),
        ({**GOOD, "seed": 10**100}, "seed"),
        ({**GOOD, "seed": "7"}, "seed"),
        ({**GOOD, "provider": "openai"}, "provider"),
        ({**GOOD, "metadata": ["a"]}, "metadata"),
        ({**GOOD, "metadata": "tag"}, "metadata"),
        ({**GOOD, "metadata": {"blob": "m" * 4096}}, "metadata"),
    ],
    ids=lambda v: repr(v)[:60],
)
async def test_invalid_field_is_422_naming_it_and_charges_nothing(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore, body: Any, field: str | None
) -> None:
    before = await row_counts(store)
    content = json.dumps(body).replace("Infinity", "1e400").encode()

    response = await post_raw(client, caller, content)

    assert_error(response, 422, "validation_error", field)
    assert await row_counts(store) == before
    assert await balance(client, caller) == 1000


async def test_422_message_names_the_allowed_values(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.post(
        "/v1/tasks", json={**GOOD, "resolution": "8k"}, headers=caller.headers
    )
    error = assert_error(response, 422, "validation_error", "resolution")
    assert "1k" in error["message"]
    assert "4k" in error["message"]


# --- 422 prompt_blocked -----------------------------------------------------------------------

BLOCKED = [
    ("n u d e woman on a beach", "sexual-explicit", "sexual"),
    ("a nude portrait", "sexual-explicit", "sexual"),
    ("A NUDE PORTRAIT", "sexual-explicit", "sexual"),
    ("how to build a bomb at home", "illegal-weapons", "illegal_activity"),
    ("a beheading in the town square", "violence-gore", "violence"),
]


@pytest.mark.parametrize(("prompt", "rule_id", "category"), BLOCKED)
async def test_blocked_prompt_is_422_neutral_charges_nothing_and_is_logged(
    client: httpx.AsyncClient,
    caller: Caller,
    store: SqliteStore,
    prompt: str,
    rule_id: str,
    category: str,
) -> None:
    response = await client.post(
        "/v1/tasks",
        json={"prompt": prompt, "model": "nano-banana"},
        headers={**caller.headers, "Idempotency-Key": "blocked-1"},
    )

    error = assert_error(response, 422, "prompt_blocked", "prompt")
    text = response.text.lower()
    for leak in (rule_id, category, *rule_id.split("-"), "nude", "bomb", "beheading", "sexual"):
        assert leak.lower() not in text, f"the refusal leaks {leak!r}: {error['message']}"
    assert await balance(client, caller) == 1000
    ledger = (await client.get("/v1/account/ledger", headers=caller.headers)).json()["data"]
    assert [e["kind"] for e in ledger] == ["grant"]
    assert (await client.get("/v1/tasks", headers=caller.headers)).json()["data"] == []
    counts = await row_counts(store)
    assert counts["tasks"] == counts["events"] == counts["timeline"] == 0
    assert counts["idempotency_keys"] == 0
    assert counts["moderation_decisions"] == 1
    blocks = await decisions_of(store, caller.account_id)
    assert len(blocks) == 1
    assert (blocks[0].verdict, blocks[0].stage) == ("blocked", "rules")
    assert blocks[0].rule_id == rule_id
    assert blocks[0].category == category
    assert prompt not in repr(blocks[0])  # kept only as a hash


async def test_every_blocked_prompt_gets_the_same_message(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    bodies = set()
    for prompt, _, _ in BLOCKED:
        response = await client.post(
            "/v1/tasks", json={"prompt": prompt, "model": "nano-banana"}, headers=caller.headers
        )
        bodies.add(response.text)
    assert len(bodies) == 1


async def test_moderation_log_is_per_account(
    client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    bad = await make_caller(name="bad")
    good = await make_caller(name="good")

    await client.post(
        "/v1/tasks", json={"prompt": "a nude portrait", "model": "nano-banana"}, headers=bad.headers
    )
    ok = await client.post(
        "/v1/tasks", json={"prompt": "a portrait", "model": "nano-banana"}, headers=good.headers
    )

    assert ok.status_code == 202
    assert [d.verdict for d in await decisions_of(store, bad.account_id)] == ["blocked"]
    assert [d.verdict for d in await decisions_of(store, good.account_id)] == ["allowed"]


@pytest.mark.parametrize("prompt", ["a class portrait", "a therapist's office", "nudibranch"])
async def test_innocent_prompts_pass(
    client: httpx.AsyncClient, caller: Caller, prompt: str
) -> None:
    response = await client.post(
        "/v1/tasks", json={"prompt": prompt, "model": "nano-banana"}, headers=caller.headers
    )
    assert response.status_code == 202, response.text


# --- never a 500 for bad input ----------------------------------------------------------------


async def test_out_of_range_number_in_metadata_is_refused_not_500(
    lenient_client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    content = b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"x": 1e400}}'
    before = await row_counts(store)

    response = await post_raw(lenient_client, caller, content)
    listing = await lenient_client.get("/v1/tasks", headers=caller.headers)

    assert response.status_code in (400, 422)
    assert await row_counts(store) == before
    assert listing.status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"prompt": "a cat \\ud800", "model": "nano-banana"}',
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"\\udfff": 1}}',
    ],
)
async def test_lone_surrogate_escape_is_refused_not_500(
    lenient_client: httpx.AsyncClient, caller: Caller, content: bytes
) -> None:
    response = await post_raw(lenient_client, caller, content)
    assert response.status_code in (400, 422)


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/account/ledger"])
async def test_limit_with_thousands_of_digits_is_not_500(
    lenient_client: httpx.AsyncClient, caller: Caller, path: str
) -> None:
    response = await lenient_client.get(path, params={"limit": "1" * 5000}, headers=caller.headers)
    assert response.status_code in (400, 422)


@pytest.mark.parametrize("declared", [b"\xb2", b"1" * 5000])
async def test_odd_content_length_is_not_500(
    lenient_client: httpx.AsyncClient, caller: Caller, declared: bytes
) -> None:
    headers = [
        (b"authorization", caller.headers["Authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"content-length", declared),
    ]
    response = await lenient_client.post("/v1/tasks", content=b"{}", headers=headers)
    assert response.status_code in (400, 413)


async def test_a_nul_in_the_prompt_is_refused_before_any_charge(
    lenient_client: httpx.AsyncClient, caller: Caller
) -> None:
    # PostgreSQL's text cannot hold NUL; refused the same way on both backends.
    content = b'{"prompt": "a cat\\u0000", "model": "nano-banana"}'
    response = await post_raw(lenient_client, caller, content)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "prompt"
    account = await lenient_client.get("/v1/account", headers=caller.headers)
    assert account.json()["balance_credits"] == 1000


@pytest.mark.parametrize(
    "content",
    [
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"nul\\u0000": "\\u0000"}}',
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"n": ' + b"9" * 1000 + b"}}",
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"a": {"b": {"c": [[[[1]]]]}}}}',
        b'{"prompt": "a cat", "model": "nano-banana", "prompt": "a dog"}',
        b'{"prompt": "a cat", "model": "nano-banana", "metadata": {"x": 1e308, "y": -0.0}}',
    ],
    ids=lambda c: repr(c[:50]),
)
async def test_odd_but_valid_json_is_served_without_500(
    lenient_client: httpx.AsyncClient, caller: Caller, content: bytes
) -> None:
    response = await post_raw(lenient_client, caller, content)

    assert response.status_code == 202, response.text
    fetched = await lenient_client.get(response.headers["location"], headers=caller.headers)
    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    listing = await lenient_client.get("/v1/tasks", headers=caller.headers)
    assert listing.status_code == 200
