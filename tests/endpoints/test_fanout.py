"""Fan-out: an event and its deliveries are written in one transaction, one pending delivery per
enabled endpoint of the account that subscribes to the event's type — on submission (the
``task.queued`` event) and on every later status change (``apply_update``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.core.clock import system_clock
from service.core.ledger import Change, Result, TaskStatus
from service.core.timeline import EntryKind
from service.store.queries import Queries
from service.store.sqlite import SqliteStore
from service.upstream import apply_update
from tests.conftest import Caller, MakeCaller
from tests.endpoints.conftest import Api, rows

TASK = {"prompt": "a red fox", "model": "nano-banana"}
DELIVERIES = (
    "SELECT d.endpoint_id, d.account_id, d.status, d.attempts, d.next_attempt_at, d.manual,"
    " d.created_at, e.type, e.created_at AS event_created_at FROM deliveries d"
    " JOIN events e ON e.id = d.event_id ORDER BY d.rowid"
)


async def setup_endpoints(api: Api, client: httpx.AsyncClient, who: Caller) -> dict[str, str]:
    """One endpoint per fate: all types, only task.succeeded, disabled, deleted."""
    made = {
        "all": (await api.create(who))["id"],
        "succeeded": (await api.create(who, event_types=["task.succeeded"]))["id"],
        "disabled": (await api.create(who))["id"],
        "deleted": (await api.create(who))["id"],
    }
    assert (await api.patch(who, made["disabled"], {"enabled": False})).status_code == 200
    gone = await client.delete(f"/v1/endpoints/{made['deleted']}", headers=who.headers)
    assert gone.status_code == 204
    return made


async def submit(client: httpx.AsyncClient, who: Caller, **headers: str) -> dict[str, Any]:
    response = await client.post("/v1/tasks", json=TASK, headers={**who.headers, **headers})
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


async def test_submitting_a_task_delivers_task_queued_to_subscribed_endpoints_only(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    made = await setup_endpoints(api, client, caller)

    await submit(client, caller)

    deliveries = await rows(store, DELIVERIES)
    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert delivery["endpoint_id"] == made["all"]
    assert delivery["type"] == "task.queued"
    assert delivery["account_id"] == caller.account_id
    assert (delivery["status"], delivery["attempts"], delivery["manual"]) == ("pending", 0, 0)
    assert delivery["next_attempt_at"] == delivery["created_at"] == delivery["event_created_at"]


async def test_without_endpoints_the_event_is_still_kept(
    client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    await submit(client, caller)

    assert [e["type"] for e in await rows(store, "SELECT type FROM events")] == ["task.queued"]
    assert await rows(store, "SELECT id FROM deliveries") == []


async def test_events_go_only_to_their_own_accounts_endpoints(
    api: Api, client: httpx.AsyncClient, make_caller: MakeCaller, store: SqliteStore
) -> None:
    mine, theirs = await make_caller(), await make_caller(name="other")
    await api.create(theirs)
    my_endpoint = (await api.create(mine))["id"]

    await submit(client, mine)

    assert [d["endpoint_id"] for d in await rows(store, DELIVERIES)] == [my_endpoint]


async def test_the_event_and_its_deliveries_roll_back_together(
    api: Api,
    client: httpx.AsyncClient,
    caller: Caller,
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await api.create(caller)

    async def broken(self: Queries, record: object) -> None:
        raise RuntimeError("disk on fire")

    # the idempotency record is the last write of the submit transaction: after the fan-out
    monkeypatch.setattr(Queries, "put_idempotency", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await client.post(
            "/v1/tasks", json=TASK, headers={**caller.headers, "Idempotency-Key": "k"}
        )

    for table in ("tasks", "events", "deliveries"):
        assert await rows(store, f"SELECT id FROM {table}") == [], table  # noqa: S608


async def test_status_changes_fan_out_by_subscription(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    made = await setup_endpoints(api, client, caller)
    task_id = (await submit(client, caller))["id"]
    # as the mirror loop settles it: kept (a provider's own success only holds the task)
    result = Result(
        "https://img.example/1.png", "image/png", 1024, 1024, asset_id="ast_1",
        source_url="https://img.example/1.png", bytes=1234, sha256="0" * 64,
    )  # fmt: skip

    for change in (
        Change(TaskStatus.SUBMITTED, provider_task_id="p-1"),
        Change(TaskStatus.SUCCEEDED, progress=100, results=(result,)),
    ):
        async with store.transaction() as tx:
            task = await tx.get_task_by_id(task_id)
            assert task is not None
            await apply_update(
                tx, task, change, system_clock(), kind=EntryKind.STATE_CHANGE, source="test",
                link=lambda asset_id: f"https://taskhook.test/assets/{asset_id}",
            )  # fmt: skip

    got = [(d["type"], d["endpoint_id"]) for d in await rows(store, DELIVERIES)]
    assert got == [
        ("task.queued", made["all"]),
        ("task.submitted", made["all"]),
        ("task.succeeded", made["all"]),
        ("task.succeeded", made["succeeded"]),
    ]


async def test_a_re_enabled_endpoint_receives_again(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    endpoint_id = (await api.create(caller, event_types=["task.queued"]))["id"]
    await api.patch(caller, endpoint_id, {"enabled": False})
    await submit(client, caller)
    await api.patch(caller, endpoint_id, {"enabled": True})
    await submit(client, caller)

    assert [d["endpoint_id"] for d in await rows(store, DELIVERIES)] == [endpoint_id]


async def test_deleting_an_endpoint_gives_up_what_was_due_to_it(
    api: Api, client: httpx.AsyncClient, caller: Caller, store: SqliteStore
) -> None:
    doomed = (await api.create(caller))["id"]
    kept = (await api.create(caller))["id"]
    await submit(client, caller)

    await client.delete(f"/v1/endpoints/{doomed}", headers=caller.headers)

    states = await rows(
        store, "SELECT endpoint_id, status, next_attempt_at, last_error FROM deliveries"
    )
    by_endpoint = {s["endpoint_id"]: s for s in states}
    assert by_endpoint[doomed]["status"] == "failed"
    assert by_endpoint[doomed]["next_attempt_at"] is None
    assert by_endpoint[doomed]["last_error"] == "endpoint deleted"
    assert by_endpoint[kept]["status"] == "pending"
