"""The moderation decision log over real HTTP: every submit's screening decision is kept,
allowed or blocked, with the key that submitted, written in the task's own transaction when it
commits and alone when it does not; ``GET /v1/moderation/decisions`` lists an account's (an
admin key's: every account's), filtered and paged."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from service.core.clock import parse_rfc3339, system_clock
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tests.backends import reader
from tests.conftest import Caller, MakeCaller

URL = "/v1/moderation/decisions"
CLEAN = {"prompt": "a red fox in the snow", "model": "nano-banana", "resolution": "2k"}
NUDE = {"prompt": "a nude portrait", "model": "nano-banana"}
GORE = {"prompt": "a beheading in the town square", "model": "nano-banana"}
FIELDS = {
    "id", "account_id", "key_id", "verdict", "stage", "rule_id", "category", "error",
    "prompt_sha256", "created_at",
}  # fmt: skip


async def keyed(store: SqliteStore, account_id: str, *, admin: bool = False) -> tuple[str, Caller]:
    """Another key for the account: its id and a caller using it."""
    record, raw = await create_api_key(store, system_clock, account_id, admin=admin)
    return record.id, Caller(account_id, raw)


async def listed(client: httpx.AsyncClient, who: Caller, **query: str) -> list[dict[str, Any]]:
    response = await client.get(URL, params=query, headers=who.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def submit(client: httpx.AsyncClient, who: Caller, body: dict[str, Any]) -> int:
    return (await client.post("/v1/tasks", json=body, headers=who.headers)).status_code


async def test_every_decision_is_listed_newest_first_with_the_key_that_submitted(
    client: httpx.AsyncClient, store: SqliteStore, caller: Caller
) -> None:
    first_key, first = await keyed(store, caller.account_id)
    second_key, second = await keyed(store, caller.account_id)
    assert await submit(client, first, CLEAN) == 202
    assert await submit(client, second, NUDE) == 422

    blocked, allowed = await listed(client, caller)

    assert set(blocked) == set(allowed) == FIELDS
    assert allowed == {
        "id": allowed["id"],
        "account_id": caller.account_id,
        "key_id": first_key,
        "verdict": "allowed",
        "stage": "rules",
        "rule_id": None,
        "category": None,
        "error": None,
        "prompt_sha256": hashlib.sha256(CLEAN["prompt"].encode()).hexdigest(),
        "created_at": allowed["created_at"],
    }
    assert blocked["key_id"] == second_key
    assert (blocked["verdict"], blocked["stage"]) == ("blocked", "rules")
    assert (blocked["rule_id"], blocked["category"]) == ("sexual-explicit", "sexual")
    assert blocked["id"] > allowed["id"]
    assert blocked["id"].startswith("mod_")
    assert parse_rfc3339(blocked["created_at"]) >= parse_rfc3339(allowed["created_at"])


async def test_filters_by_verdict_and_category(client: httpx.AsyncClient, caller: Caller) -> None:
    for body in (CLEAN, NUDE, GORE, CLEAN):
        await submit(client, caller, body)

    assert len(await listed(client, caller)) == 4
    assert [d["verdict"] for d in await listed(client, caller, verdict="allowed")] == [
        "allowed"
    ] * 2
    blocks = await listed(client, caller, verdict="blocked")
    assert [d["category"] for d in blocks] == ["violence", "sexual"]
    assert [d["rule_id"] for d in await listed(client, caller, category="sexual")] == [
        "sexual-explicit"
    ]
    assert len(await listed(client, caller, verdict="blocked", category="violence")) == 1
    assert await listed(client, caller, verdict="allowed", category="violence") == []
    assert await listed(client, caller, category="sexual_minors") == []
    assert len(await listed(client, caller, verdict="", category="")) == 4  # empty: no filter


async def test_pages_follow_the_cursor_to_the_end(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    for _ in range(5):
        await submit(client, caller, NUDE)
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        response = await client.get(
            URL, params={"limit": 2, "cursor": cursor}, headers=caller.headers
        )
        page = response.json()
        seen += [d["id"] for d in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"verdict": "denied"}, 422, "verdict"),
        ({"verdict": "BLOCKED"}, 422, "verdict"),
        ({"category": "nsfw"}, 422, "category"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "ten"}, 400, "limit"),
        ({"cursor": "mod_01J00000000000000000000000"}, 400, "cursor"),
    ],
)
async def test_bad_filters_are_refused_naming_the_field(
    client: httpx.AsyncClient, caller: Caller, query: dict[str, str], status: int, field: str
) -> None:
    response = await client.get(URL, params=query, headers=caller.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


async def test_without_a_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_an_account_never_sees_another_accounts_decisions(
    client: httpx.AsyncClient, make_caller: MakeCaller
) -> None:
    mine = await make_caller(name="mine")
    theirs = await make_caller(name="theirs")
    await submit(client, theirs, NUDE)
    await submit(client, theirs, CLEAN)
    await submit(client, mine, CLEAN)

    [only] = await listed(client, mine)
    assert only["account_id"] == mine.account_id
    assert await listed(client, mine, account_id=theirs.account_id) == []
    assert await listed(client, mine, verdict="blocked") == []
    assert len(await listed(client, mine, account_id=mine.account_id)) == 1


async def test_an_admin_key_sees_every_account_and_may_pick_one(
    client: httpx.AsyncClient, store: SqliteStore, make_caller: MakeCaller
) -> None:
    one = await make_caller(name="one")
    two = await make_caller(name="two")
    staff = await create_account(store, system_clock, "staff")
    _, admin = await keyed(store, staff.id, admin=True)
    await submit(client, one, NUDE)
    await submit(client, two, GORE)
    await submit(client, two, CLEAN)

    everything = await listed(client, admin)
    assert [d["account_id"] for d in everything] == [two.account_id] * 2 + [one.account_id]
    assert [d["category"] for d in await listed(client, admin, verdict="blocked")] == [
        "violence",
        "sexual",
    ]
    assert [d["account_id"] for d in await listed(client, admin, category="sexual")] == [
        one.account_id
    ]
    assert len(await listed(client, admin, account_id=two.account_id)) == 2
    assert await listed(client, admin, account_id="acct_nobody") == []


async def rows(store: SqliteStore, table: str) -> int:
    async with reader(store).execute(f"SELECT COUNT(*) FROM {table}") as cursor:  # noqa: S608
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.sqlite_only  # traces the SQLite writer's statements
async def test_an_accepted_submit_writes_its_decision_in_the_tasks_own_commit(
    client: httpx.AsyncClient, store: SqliteStore, caller: Caller
) -> None:
    ran: list[str] = []
    store.db.writer.set_trace_callback(ran.append)
    try:
        assert await submit(client, caller, CLEAN) == 202
    finally:
        store.db.writer.set_trace_callback(None)

    assert ran.count("COMMIT") == 1, ran
    inserts = [s for s in ran if s.startswith("INSERT INTO")]
    assert inserts[0].startswith("INSERT INTO moderation_decisions"), inserts
    assert any(s.startswith("INSERT INTO tasks") for s in inserts)
    assert ran.index("COMMIT") > ran.index(inserts[-1])


@pytest.mark.sqlite_only  # traces the SQLite writer's statements
async def test_a_submit_refused_after_screening_keeps_its_decision_alone(
    client: httpx.AsyncClient, store: SqliteStore, make_caller: MakeCaller
) -> None:
    poor = await make_caller(credits=1)
    ran: list[str] = []
    store.db.writer.set_trace_callback(ran.append)
    try:
        assert await submit(client, poor, CLEAN) == 402
    finally:
        store.db.writer.set_trace_callback(None)

    # the task's transaction was undone, decision and all; then the decision went in alone
    assert ran.count("ROLLBACK") == 1, ran
    assert ran.count("COMMIT") == 1, ran
    after = ran[ran.index("ROLLBACK") :]
    first_insert = next(s for s in after if s.startswith("INSERT"))
    assert first_insert.startswith("INSERT INTO moderation_decisions")
    [kept] = await listed(client, poor)
    assert (kept["verdict"], kept["stage"]) == ("allowed", "rules")
    assert await rows(store, "tasks") == 0


async def test_a_refusal_before_screening_decides_nothing(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    headers = {**caller.headers, "Idempotency-Key": "k-1"}
    assert (await client.post("/v1/tasks", json=CLEAN, headers=headers)).status_code == 202
    replay = await client.post("/v1/tasks", json=CLEAN, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    conflict = await client.post("/v1/tasks", json={**CLEAN, "seed": 7}, headers=headers)
    assert conflict.status_code == 409
    invalid = await client.post(
        "/v1/tasks", json={**CLEAN, "resolution": "9k"}, headers=caller.headers
    )
    assert invalid.status_code == 422

    assert await rows(store, "moderation_decisions") == 1  # the first submit's alone
