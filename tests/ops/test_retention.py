"""Retention: old event payloads and callback bodies are emptied, in batches; pending work and
the ledger are kept; the API still answers for purged rows. The clock is moved 31 days on
instead of waiting for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import build_background, provider_client
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.outbox import record_event
from service.retention import DAY_MS, Purged, Retention, retention_cutoff
from service.settings import Settings
from service.store.base import Account, CallbackRecord, Store
from tests.backends import make_store, reader
from tests.conftest import Caller
from tests.ops.conftest import DAY_S, MovableClock, Subscriber
from tests.upstream.test_callback_rejections import Harness, new_secret, success_body


async def rows(store: Store, sql: str, *args: object) -> list[tuple[Any, ...]]:
    async with reader(store).execute(sql, args) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def get(client: httpx.AsyncClient, who: Caller, path: str) -> Any:
    response = await client.get(path, headers=who.headers, params={"limit": "100"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_cutoff_is_max_age_before_now() -> None:
    assert retention_cutoff(100 * DAY_MS, 30) == 70 * DAY_MS
    assert retention_cutoff(DAY_MS + 5, 1) == 5


async def test_old_payloads_and_bodies_go_pending_work_and_the_ledger_stay(
    h: Harness,
    caller: Caller,
    subscriber: Subscriber,
    store: Store,
    settings: Settings,
    clock: MovableClock,
) -> None:
    t0 = clock()
    await subscriber.endpoint(caller, "/ok")
    task_a = await h.submitted_task(caller)
    assert (await h.deliver(task_a["id"], success_body())).status_code == 200
    assert await h.settle() == 1  # its image kept: succeeded
    forged = h.sign(success_body(), secret=new_secret())
    assert (await h.post(await h.path(task_a["id"]), success_body(), forged)).status_code == 401
    waiting = CallbackRecord(
        id=new_id("cb", t0), account_id=caller.account_id, task_id=task_a["id"],
        provider="simulator", provider_task_id=None, headers={"x": "y"}, body=b'{"p": 1}',
        verdict="verified", outcome="pending", detail="", received_at=t0,
    )  # fmt: skip
    async with store.transaction() as tx:
        await tx.insert_callback(waiting)  # not yet applied: kept however old
    assert await subscriber.worker.deliver_due() == 4  # A's events, all delivered
    subscriber.receiver.script["/busy"] = [(503, {"Retry-After": "3600"})]
    busy = await subscriber.endpoint(caller, "/busy")
    task_b = await h.create_task(caller)
    assert await subscriber.worker.deliver_due() == 2  # B's event: /ok delivered, /busy pending

    clock.advance(31 * DAY_S)
    await h.create_task(caller)  # a new event
    fresh = replace(waiting, id=new_id("cb", clock()), outcome="applied", received_at=clock())
    async with store.transaction() as tx:
        await tx.insert_callback(fresh)  # a new callback
    ledger_before = await get(h.client, caller, "/v1/account/ledger")
    tasks_before = await get(h.client, caller, "/v1/tasks")
    timeline_before = await get(h.client, caller, f"/v1/tasks/{task_a['id']}/timeline")
    counts = "SELECT (SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM attempts)"
    history_before = await rows(store, counts)
    retention = Retention(store, replace(settings.retention, batch_size=2), clock)
    assert await retention.purge() == Purged(events=4, callbacks=2)

    events = await rows(
        store, "SELECT task_id, type, payload = '', purged_at FROM events ORDER BY created_at, id"
    )
    purged = {(task, kind) for task, kind, empty, at in events if empty and at == clock()}
    assert purged == {
        (task_a["id"], t)
        for t in ("task.queued", "task.submitted", "task.running", "task.succeeded")
    }
    assert len(events) == 6  # B's (pending to /busy) and the new one keep their payloads
    assert await rows(store, counts) == history_before
    assert await get(h.client, caller, "/v1/account/ledger") == ledger_before
    assert await get(h.client, caller, "/v1/tasks") == tasks_before
    assert await get(h.client, caller, f"/v1/tasks/{task_a['id']}/timeline") == timeline_before

    log = {c["id"]: c for c in (await get(h.client, caller, "/v1/callbacks"))["data"]}
    assert len(log) == 4
    emptied = {i for i, c in log.items() if (c["body"], c["headers"]) == ("", {})}
    assert emptied == set(log) - {waiting.id, fresh.id}  # the old applied and rejected ones
    for kept in (waiting.id, fresh.id):
        assert (log[kept]["body"], log[kept]["headers"]) == ({"p": 1}, {"x": "y"})
    assert {(c["verdict"], c["outcome"]) for c in log.values()} == {
        ("verified", "applied"), ("rejected", "rejected"), ("verified", "pending"),
    }  # fmt: skip
    [applied] = [log[i] for i in emptied if log[i]["outcome"] == "applied"]
    replayed = await h.client.post(f"/v1/callbacks/{applied['id']}/replay", headers=caller.headers)
    assert replayed.status_code == 409, replayed.text
    assert replayed.json()["error"]["code"] == "callback_purged"

    assert await retention.purge() == Purged(events=0, callbacks=0)
    async with store.transaction() as tx:  # /busy gives up on B's (old) and the new event
        assert await tx.fail_pending_deliveries(busy, "given up", clock()) == 2
    assert await retention.purge() == Purged(events=1, callbacks=0)
    [(payload,)] = await rows(store, "SELECT payload FROM events WHERE task_id = ?", task_b["id"])
    assert payload == ""


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Store]:
    """A store with no app around it, closed whatever the test does."""
    store = make_store(tmp_path / "bare.db")
    await store.open()
    yield store
    await store.close()


async def new_account(store: Store) -> str:
    account = Account(new_id("acct", 1), "retained", 1)
    async with store.transaction() as tx:
        await tx.insert_account(account)
    return account.id


async def add_events(store: Store, account_id: str, *created_at: int) -> list[Event]:
    """``ping`` events at the given times (the account has no endpoints: no deliveries)."""
    events = [
        Event(new_id("evt", at), account_id, "ping", None, envelope("ping", {}, at), at)
        for at in created_at
    ]
    async with store.transaction() as tx:
        for event in events:
            await record_event(tx, event, event.created_at)
    return events


async def test_the_cutoff_itself_is_kept(bare: Store, settings: Settings) -> None:
    store = bare
    now = 40 * DAY_MS
    cutoff = retention_cutoff(now, settings.retention.max_age_days)
    older, exact = await add_events(store, await new_account(store), cutoff - 1, cutoff)
    assert await Retention(store, settings.retention, lambda: now).purge() == Purged(1, 0)
    assert await rows(store, "SELECT id, payload = '' FROM events ORDER BY created_at") == [
        (older.id, 1), (exact.id, 0),
    ]  # fmt: skip


async def purged_count(store: Store) -> int:
    [(count,)] = await rows(store, "SELECT COUNT(*) FROM events WHERE purged_at IS NOT NULL")
    return int(count)


async def wait_purged(store: Store, expect: int, within_s: float) -> float:
    """Seconds until ``expect`` events are purged (fails after ``within_s``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await purged_count(store) != expect:
        assert loop.time() - started < within_s, await purged_count(store)
        await asyncio.sleep(0.01)
    return loop.time() - started


async def test_the_worker_loop_purges_at_start_then_every_interval(
    bare: Store, settings: Settings
) -> None:
    settings = replace(settings, retention=replace(settings.retention, interval_seconds=1))
    store = bare
    now = 400 * DAY_MS
    account_id = await new_account(store)
    await add_events(store, account_id, DAY_MS, 2 * DAY_MS, now)
    client = provider_client(settings)
    started = time.monotonic()
    # time moves (the job's turn comes round by the clock), by too little to move the cutoff far
    background = build_background(
        settings, store, client, lambda: now + int((time.monotonic() - started) * 1000)
    )
    background.workers.start()
    try:
        assert "taskhook-retention" in {t.get_name() for t in asyncio.all_tasks()}
        await wait_purged(store, 2, within_s=2)  # the first round runs at once
        await add_events(store, account_id, 3 * DAY_MS)
        waited = await wait_purged(store, 3, within_s=3)  # the next, after the interval
        assert waited > 0.5
    finally:
        await background.close()
        await client.aclose()


async def test_of_many_processes_one_runs_each_interval(
    tmp_path: Path, bare: Store, settings: Settings
) -> None:
    """Two stores on one database (two processes' pools): the job's turn is taken once per
    interval, whichever asks first, and an interval later it comes round again."""
    other = make_store(tmp_path / "bare.db")
    await other.open()
    try:
        now = 400 * DAY_MS
        await add_events(bare, await new_account(bare), DAY_MS, 2 * DAY_MS)
        one = Retention(bare, settings.retention, lambda: now, owner="one")
        two = Retention(other, settings.retention, lambda: now, owner="two")
        results = await asyncio.gather(one.run(), two.run(), one.run(), two.run())
        assert sorted(results) == [0, 0, 0, 2]  # one pass purged both, the others ran nothing
        [(owner,)] = await rows(bare, "SELECT owner FROM job_runs WHERE name = 'retention'")
        assert owner in {"one", "two"}
        interval_ms = settings.retention.interval_seconds * 1000
        assert await Retention(other, settings.retention, lambda: now + interval_ms - 1).run() == 0
        await add_events(bare, await new_account(bare), 3 * DAY_MS)
        later = Retention(other, settings.retention, lambda: now + interval_ms, owner="two")
        assert await later.run() == 1
        assert await rows(bare, "SELECT owner FROM job_runs") == [("two",)]
    finally:
        await other.close()
