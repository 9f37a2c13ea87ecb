"""``POST /v1/tasks`` over real HTTP: the task object, what one accepted task writes (charge,
timeline, ``task.queued`` event), pricing from ``config/pricing.toml``, and Idempotency-Key."""

from __future__ import annotations

import asyncio
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.core.clock import system_clock
from service.settings import PROJECT_ROOT, load_settings
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tests.backends import reader
from tests.conftest import Caller, MakeCaller, settings_env
from tests.contract import TASK_FIELDS

PRICING = tomllib.loads((PROJECT_ROOT / "config" / "pricing.toml").read_text(encoding="utf-8"))
TASKS_OF = "SELECT COUNT(*) FROM tasks WHERE account_id = ?"
EVENTS_OF = "SELECT COUNT(*) FROM events WHERE account_id = ?"
CHARGES_OF = "SELECT COUNT(*) FROM credit_entries WHERE account_id = ? AND kind = 'charge'"
BODY: dict[str, Any] = {
    "prompt": "a red fox in the snow",
    "model": "nano-banana",
    "resolution": "2k",
}


def expected_price(model: str, task_type: str, resolution: str, num_images: int) -> int:
    per_image: float = PRICING["models"][model][task_type] * PRICING["resolutions"][resolution]
    return math.ceil(per_image) * num_images


async def post_task(
    client: httpx.AsyncClient, who: Caller, body: Any, key: str | None = None
) -> httpx.Response:
    headers = dict(who.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/tasks", json=body, headers=headers)


async def balance(client: httpx.AsyncClient, who: Caller) -> int:
    response = await client.get("/v1/account", headers=who.headers)
    assert response.status_code == 200
    value = response.json()["balance_credits"]
    assert isinstance(value, int)
    return value


async def count(store: SqliteStore, sql: str, *args: object) -> int:
    async with reader(store).execute(sql, args) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


# --- the accepted task ------------------------------------------------------------------------


async def test_create_returns_202_queued_task_with_location(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await post_task(client, caller, BODY)

    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/json")
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["id"].startswith("task_")
    assert response.headers["location"] == f"/v1/tasks/{task['id']}"
    assert "idempotent-replayed" not in response.headers
    assert task["status"] == "queued"
    assert task["progress"] == 0
    assert task["sequence"] == 1
    assert task["model"] == "nano-banana"
    assert task["provider"] == "simulator"
    assert task["provider_task_id"] is None
    assert task["type"] == "text-to-image"
    assert task["prompt"] == BODY["prompt"]
    assert task["params"] == {
        "aspect_ratio": "auto",
        "resolution": "2k",
        "output_format": "png",
        "num_images": 1,
        "seed": None,
        "images": [],
    }
    assert task["results"] == []
    assert task["failure"] is None
    assert task["cost_credits"] == 23 == expected_price("nano-banana", "text-to-image", "2k", 1)
    assert task["refunded_credits"] == 0
    assert task["metadata"] == {}
    assert task["created_at"].endswith("Z")
    assert task["updated_at"] == task["created_at"]
    assert task["completed_at"] is None


async def test_get_returns_the_created_task(client: httpx.AsyncClient, caller: Caller) -> None:
    body = {
        **BODY,
        "aspect_ratio": "16:9",
        "output_format": "jpeg",
        "num_images": 2,
        "seed": 42,
        "metadata": {"order": "A-17", "nested": {"tags": ["x", "y"], "n": 1.5}},
    }
    created = await post_task(client, caller, body)
    assert created.status_code == 202

    fetched = await client.get(created.headers["location"], headers=caller.headers)

    assert fetched.status_code == 200
    assert fetched.json() == created.json()
    assert fetched.json()["metadata"] == body["metadata"]


async def test_create_charges_the_cost_once_with_a_ledger_entry(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    before = await balance(client, caller)

    task = (await post_task(client, caller, BODY)).json()

    assert await balance(client, caller) == before - 23
    ledger = (await client.get("/v1/account/ledger", headers=caller.headers)).json()["data"]
    charges = [e for e in ledger if e["kind"] == "charge"]
    assert len(charges) == 1
    assert charges[0]["delta"] == -23
    assert charges[0]["task_id"] == task["id"]
    assert charges[0]["id"].startswith("cred_")


async def test_create_writes_one_queued_timeline_entry(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    task = (await post_task(client, caller, BODY)).json()

    response = await client.get(f"/v1/tasks/{task['id']}/timeline", headers=caller.headers)

    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    assert len(page["data"]) == 1
    entry = page["data"][0]
    assert entry["kind"] == "state_change"
    assert entry["source"] == "api"
    assert entry["outcome"] == "applied"
    assert entry["status"] == "queued"
    assert entry["progress"] == 0
    assert entry["sequence"] == 1
    assert entry["id"].startswith("tl_")


async def test_create_writes_a_task_queued_event_carrying_the_task_object(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    task = (await post_task(client, caller, {**BODY, "metadata": {"k": "v"}})).json()

    async with reader(store).execute(
        "SELECT id, account_id, type, task_id, payload FROM events WHERE task_id = ?",
        (task["id"],),
    ) as cursor:
        rows = list(await cursor.fetchall())

    assert len(rows) == 1
    row = rows[0]
    assert row["id"].startswith("evt_")
    assert row["type"] == "task.queued"
    assert row["account_id"] == caller.account_id
    payload = json.loads(row["payload"])
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "task.queued"
    assert payload["timestamp"].endswith("Z")
    assert payload["data"] == task


@pytest.mark.parametrize(
    ("extra", "expected_type"),
    [
        ({}, "text-to-image"),
        ({"images": ["https://example.com/a.png"]}, "edit"),
        ({"type": "edit", "images": ["https://example.com/a.png"]}, "edit"),
        ({"type": "text-to-image"}, "text-to-image"),
    ],
)
async def test_type_is_inferred_from_images(
    client: httpx.AsyncClient, caller: Caller, extra: dict[str, Any], expected_type: str
) -> None:
    response = await post_task(
        client, caller, {"prompt": "a cat", "model": "nano-banana-2", **extra}
    )

    assert response.status_code == 202
    task = response.json()
    assert task["type"] == expected_type
    assert task["params"]["images"] == extra.get("images", [])
    assert task["cost_credits"] == expected_price("nano-banana-2", expected_type, "1k", 1)


@pytest.mark.parametrize(
    ("model", "images", "resolution", "num_images", "cost"),
    [
        ("nano-banana-fast", None, "1k", 1, 5),
        ("nano-banana", None, "2k", 1, 23),
        ("nano-banana", None, "4k", 1, 30),
        ("nano-banana-pro", None, "4k", 2, 80),
        ("nano-banana-2", None, "2k", 3, 90),
        ("nano-banana-2", ["https://example.com/in.png"], "2k", 1, 36),
        ("nano-banana-fast", None, "2k", 4, 32),
    ],
)
async def test_cost_follows_the_pricing_config(
    client: httpx.AsyncClient,
    caller: Caller,
    model: str,
    images: list[str] | None,
    resolution: str,
    num_images: int,
    cost: int,
) -> None:
    body: dict[str, Any] = {
        "prompt": "a lighthouse at dusk",
        "model": model,
        "resolution": resolution,
        "num_images": num_images,
    }
    if images is not None:
        body["images"] = images
    task_type = "edit" if images else "text-to-image"
    assert expected_price(model, task_type, resolution, num_images) == cost
    before = await balance(client, caller)

    response = await post_task(client, caller, body)

    assert response.status_code == 202
    assert response.json()["cost_credits"] == cost
    assert await balance(client, caller) == before - cost


async def test_every_configured_model_and_provider_is_accepted(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=10_000)
    for model in PRICING["models"]:
        for provider in ("simulator", "kie", "banana2", "nanobananapro"):
            body = {"prompt": "a bowl of fruit", "model": model, "provider": provider}
            response = await post_task(client, who, body)
            assert response.status_code == 202, (model, provider, response.text)
            assert response.json()["provider"] == provider


async def test_boundary_values_are_accepted(client: httpx.AsyncClient, caller: Caller) -> None:
    body = {
        "prompt": ("a quiet harbour at dawn " * 209)[:5000],
        "model": "nano-banana-fast",
        "images": [f"https://example.com/{i}.png" for i in range(14)],
        "num_images": 4,
        "seed": 2**32 - 1,
        "metadata": {"blob": "m" * 4000},
    }

    response = await post_task(client, caller, body)

    assert response.status_code == 202, response.text
    task = response.json()
    assert task["type"] == "edit"
    assert len(task["prompt"]) == 5000
    assert task["params"]["seed"] == 2**32 - 1
    assert task["metadata"] == body["metadata"]


async def test_a_non_ascii_prompt_round_trips(client: httpx.AsyncClient, caller: Caller) -> None:
    prompt = "un café à Paris 🌧️, 雨の日"
    created = await post_task(client, caller, {"prompt": prompt, "model": "nano-banana"})

    fetched = await client.get(created.headers["location"], headers=caller.headers)

    assert fetched.json()["prompt"] == prompt


async def test_exact_cost_equal_to_balance_is_accepted(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=23)

    response = await post_task(client, who, BODY)

    assert response.status_code == 202
    assert await balance(client, who) == 0


# --- Idempotency-Key ----------------------------------------------------------------------------


async def test_same_key_and_same_body_returns_the_same_task_charged_once(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    before = await balance(client, caller)
    first = await post_task(client, caller, BODY, key="order-1")
    reordered = '{ "resolution" : "2k",\n "model":"nano-banana", "prompt": "a red fox in the snow"}'

    second = await client.post(
        "/v1/tasks",
        content=reordered.encode(),
        headers={
            **caller.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": "order-1",
        },
    )

    assert first.status_code == second.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert await balance(client, caller) == before - 23
    assert await count(store, TASKS_OF, caller.account_id) == 1
    assert await count(store, CHARGES_OF, caller.account_id) == 1
    assert await count(store, EVENTS_OF, caller.account_id) == 1


async def test_different_keys_make_different_tasks(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    first = await post_task(client, caller, BODY, key="k-1")
    second = await post_task(client, caller, BODY, key="k-2")
    third = await post_task(client, caller, BODY)

    ids = {r.json()["id"] for r in (first, second, third)}
    assert len(ids) == 3


async def test_concurrent_duplicates_make_one_task_and_one_charge(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    before = await balance(client, caller)

    responses = await asyncio.gather(
        *(post_task(client, caller, BODY, key="burst") for _ in range(5))
    )

    assert [r.status_code for r in responses] == [202] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 4
    assert await balance(client, caller) == before - 23
    assert await count(store, TASKS_OF, caller.account_id) == 1
    assert await count(store, CHARGES_OF, caller.account_id) == 1


async def test_concurrent_requests_with_one_key_and_different_bodies_make_one_task(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    bodies = [{**BODY, "prompt": f"variant {i}"} for i in range(4)]

    responses = await asyncio.gather(*(post_task(client, caller, b, key="race") for b in bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 409, 409, 409]
    assert await count(store, TASKS_OF, caller.account_id) == 1


async def test_same_key_on_another_account_is_independent(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    bob = await make_caller(name="bob")

    a = await post_task(client, alice, BODY, key="shared-key")
    b = await post_task(client, bob, {**BODY, "prompt": "something else"}, key="shared-key")
    b_again = await post_task(client, bob, {**BODY, "prompt": "something else"}, key="shared-key")

    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers
    assert b_again.json()["id"] == b.json()["id"]
    assert await balance(client, alice) == 1000 - 23
    assert await balance(client, bob) == 1000 - 23
    assert (await client.get(a.headers["location"], headers=bob.headers)).status_code == 404


async def test_a_key_whose_request_was_refused_can_be_used_again(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=10)

    refused = await post_task(client, who, BODY, key="retry-me")
    assert refused.status_code == 402
    invalid = await post_task(client, who, {"prompt": "x"}, key="retry-me")
    assert invalid.status_code == 422
    accepted = await post_task(
        client, who, {**BODY, "resolution": "1k", "model": "nano-banana-fast"}, key="retry-me"
    )

    assert accepted.status_code == 202
    assert "idempotent-replayed" not in accepted.headers


async def test_a_provider_the_environment_did_not_configure_is_refused(tmp_path: Path) -> None:
    settings = load_settings(settings_env(tmp_path))  # no TASKHOOK_KIE_BASE_URL
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        account = await create_account(store, system_clock, "solo", 100)
        _, key = await create_api_key(store, system_clock, account.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/v1/tasks",
                headers={"Authorization": f"Bearer {key}"},
                json={"prompt": "a kite", "model": "nano-banana", "provider": "kie"},
            )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "provider"


async def test_optional_fields_sent_as_null_take_their_defaults(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    # The OpenAPI document says every optional field may be null; the API must agree.
    nulls = dict.fromkeys(
        ("type", "images", "aspect_ratio", "resolution", "output_format", "num_images", "seed",
         "provider", "metadata"),
        None,
    )  # fmt: skip
    response = await post_task(client, caller, {**BODY, **nulls})
    assert response.status_code == 202, response.text
    task = response.json()
    assert task["type"] == "text-to-image"
    assert task["provider"] == "simulator"
    assert task["metadata"] == {}
    assert task["params"]["resolution"] == "1k"
    assert task["params"]["seed"] is None
