"""``GET /v1/account`` and ``GET /v1/account/ledger`` over real HTTP: the balance is always the sum
of the ledger's deltas, entries are the caller's own, newest first, paged with limit/cursor."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from service.core.clock import system_clock
from service.store.sqlite import SqliteStore
from service.usecases import grant_credits
from tests.conftest import Caller, MakeCaller

ENTRY_KEYS = {"id", "kind", "delta", "task_id", "created_at"}


async def account(client: httpx.AsyncClient, who: Caller) -> dict[str, Any]:
    response = await client.get("/v1/account", headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ledger(client: httpx.AsyncClient, who: Caller, limit: int = 100) -> list[dict[str, Any]]:
    """Every ledger entry, following next_cursor to the end."""
    entries: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": limit}
    for _ in range(1000):
        response = await client.get("/v1/account/ledger", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "next_cursor"}
        assert len(page["data"]) <= limit
        entries.extend(page["data"])
        if page["next_cursor"] is None:
            return entries
        params["cursor"] = page["next_cursor"]
    raise AssertionError("ledger pagination did not end")


async def post_task(client: httpx.AsyncClient, who: Caller, **body: Any) -> httpx.Response:
    return await client.post(
        "/v1/tasks",
        json={"prompt": "a cat", "model": "nano-banana-fast", **body},
        headers=who.headers,
    )


async def test_account_object(client: httpx.AsyncClient, make_caller: MakeCaller) -> None:
    who = await make_caller(credits=250, name="Acme Studio")

    body = await account(client, who)

    assert body == {"id": who.account_id, "name": "Acme Studio", "balance_credits": 250}


async def test_new_account_ledger_holds_its_grant(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=250)

    entries = await ledger(client, who)

    assert len(entries) == 1
    entry = entries[0]
    assert set(entry) == ENTRY_KEYS
    assert entry["kind"] == "grant"
    assert entry["delta"] == 250
    assert entry["task_id"] is None
    assert entry["id"].startswith("cred_")
    assert entry["created_at"].endswith("Z")


async def test_account_without_credits_has_an_empty_ledger(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    who = await make_caller(credits=0)

    assert (await account(client, who))["balance_credits"] == 0
    assert await ledger(client, who) == []


async def test_charges_appear_newest_first_with_their_task(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    first = (await post_task(client, caller, resolution="1k")).json()
    await asyncio.sleep(0.002)  # distinct milliseconds: "newest" is well defined
    second = (await post_task(client, caller, resolution="4k", num_images=2)).json()

    entries = await ledger(client, caller)

    assert [(e["kind"], e["delta"], e["task_id"]) for e in entries] == [
        ("charge", -20, second["id"]),
        ("charge", -5, first["id"]),
        ("grant", 1000, None),
    ]
    assert (await account(client, caller))["balance_credits"] == 1000 - 25


async def test_ledger_pages_walk_every_entry_once(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    for _ in range(4):
        await grant_credits(store, system_clock, caller.account_id, 10)
    for _ in range(4):
        assert (await post_task(client, caller)).status_code == 202

    everything = await ledger(client, caller, limit=100)
    by_three = await ledger(client, caller, limit=3)
    by_one = await ledger(client, caller, limit=1)

    assert len(everything) == 9
    assert by_three == everything
    assert by_one == everything
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 9


@pytest.mark.parametrize(("limit", "status"), [("0", 422), ("101", 422), ("x", 400), ("-5", 400)])
async def test_ledger_limit_is_checked(
    client: httpx.AsyncClient, caller: Caller, limit: str, status: int
) -> None:
    response = await client.get(
        "/v1/account/ledger", params={"limit": limit}, headers=caller.headers
    )
    assert response.status_code == status
    assert response.json()["error"]["field"] == "limit"


async def test_a_task_list_cursor_on_the_ledger_is_a_place_in_time(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    # Cursors name an instant, not a list: a task cursor on the ledger pages from that moment,
    # and never beyond the caller's own entries.
    for _ in range(2):
        await post_task(client, caller)
    task_cursor = (
        await client.get("/v1/tasks", params={"limit": 1}, headers=caller.headers)
    ).json()["next_cursor"]
    assert isinstance(task_cursor, str)

    response = await client.get(
        "/v1/account/ledger", params={"cursor": task_cursor}, headers=caller.headers
    )

    assert response.status_code == 200
    entries = response.json()["data"]
    assert {e["kind"] for e in entries} <= {"grant", "charge"}
    assert len(entries) <= 3


async def test_account_and_ledger_show_only_the_callers_own(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    alice = await make_caller(credits=100, name="alice")
    bob = await make_caller(credits=40, name="bob")
    alice_task = (await post_task(client, alice)).json()
    bob_task = (await post_task(client, bob, model="nano-banana")).json()

    a, b = await account(client, alice), await account(client, bob)
    a_entries, b_entries = await ledger(client, alice), await ledger(client, bob)

    assert (a["id"], a["name"], a["balance_credits"]) == (alice.account_id, "alice", 95)
    assert (b["id"], b["name"], b["balance_credits"]) == (bob.account_id, "bob", 25)
    assert {e["task_id"] for e in a_entries} == {None, alice_task["id"]}
    assert {e["task_id"] for e in b_entries} == {None, bob_task["id"]}
    assert not {e["id"] for e in a_entries} & {e["id"] for e in b_entries}
    # Alice's cursor cannot open Bob's entries either.
    more = await client.get(
        "/v1/account/ledger",
        params={"limit": 1},
        headers=alice.headers,
    )
    cursor = more.json()["next_cursor"]
    tail = await client.get("/v1/account/ledger", params={"cursor": cursor}, headers=alice.headers)
    assert {e["id"] for e in tail.json()["data"]} <= {e["id"] for e in a_entries}


async def test_balance_is_always_the_sum_of_the_ledger(
    client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    """Random grants, tasks that fit, tasks that do not (402) and refused prompts (422): after
    every step the balance equals the sum of the ledger's deltas, and charges match the tasks."""
    rng = random.Random(20260131)  # noqa: S311 - a reproducible walk, not a secret
    who = await make_caller(credits=30)
    other = await make_caller(credits=500, name="bystander")
    models = ["nano-banana-fast", "nano-banana", "nano-banana-pro", "nano-banana-2"]
    expected = 30
    accepted: dict[str, int] = {}
    statuses: set[int] = set()

    for step in range(60):
        action = rng.choice(["grant", "task", "task", "task", "blocked", "other"])
        if action == "grant":
            amount = rng.randint(1, 60)
            await grant_credits(store, system_clock, who.account_id, amount)
            expected += amount
        elif action == "task":
            body = {
                "prompt": f"step {step}: a tidy desk",
                "model": rng.choice(models),
                "resolution": rng.choice(["1k", "2k", "4k"]),
                "num_images": rng.randint(1, 4),
            }
            response = await client.post("/v1/tasks", json=body, headers=who.headers)
            statuses.add(response.status_code)
            assert response.status_code in (202, 402), response.text
            if response.status_code == 202:
                task = response.json()
                accepted[task["id"]] = task["cost_credits"]
                expected -= task["cost_credits"]
                assert expected >= 0
        elif action == "blocked":
            response = await post_task(client, who, prompt="a nude portrait")
            assert response.status_code == 422
        else:
            assert (await post_task(client, other)).status_code == 202

        balance = (await account(client, who))["balance_credits"]
        entries = await ledger(client, who, limit=rng.choice([1, 7, 100]))
        assert balance == expected == sum(e["delta"] for e in entries)
        assert balance >= 0

    charges = {e["task_id"]: -e["delta"] for e in entries if e["kind"] == "charge"}
    assert charges == accepted
    assert statuses == {202, 402}, "the walk should exercise both acceptance and refusal"
