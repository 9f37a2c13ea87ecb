"""``[tasks] max_in_flight_per_account``: at the cap a new task is refused with 429
``too_many_tasks`` before any charge; an Idempotency-Key replay is never refused; other accounts
are unaffected; submissions racing for the last place get exactly the places there are; and the
places come back as tasks finish (the real workers and simulator, over loopback).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.core.clock import system_clock
from service.core.ids import new_id
from service.core.ledger import TaskStatus, initial_state
from service.core.tasks import Task, TaskSpec
from service.store.base import Store
from service.store.task_queries import IN_FLIGHT
from service.usecases import create_account
from tests.api.test_errors import assert_error
from tests.backends import make_store, reader
from tests.conftest import Caller
from tests.ratelimit.helpers import Running, running
from tests.upstream.test_live_flows import FAST

TASK: dict[str, Any] = {"prompt": "a red fox in the snow", "model": "nano-banana"}
PRICE = 15  # nano-banana at 1k, one image (config/pricing.toml)


def make_task(account_id: str, n: int, status: TaskStatus = TaskStatus.QUEUED) -> Task:
    state = replace(initial_state(n), status=status)
    return Task(
        id=new_id("task", n), account_id=account_id,
        spec=TaskSpec(prompt="p", model="nano-banana", type="text-to-image", provider="simulator"),
        state=state, cost_credits=15, refunded_credits=0, created_at=n,
    )  # fmt: skip


def cap_env(cap: int, **extra: str) -> dict[str, str]:
    return {"TASKHOOK__TASKS__MAX_IN_FLIGHT_PER_ACCOUNT": str(cap), **extra}


async def submit(app: Running, who: Caller, key: str | None = None) -> httpx.Response:
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    return await app.http.post("/v1/tasks", json=TASK, headers=headers)


async def stored_tasks(store: Store, account_id: str) -> int:
    sql = "SELECT COUNT(*) FROM tasks WHERE account_id = ?"
    async with reader(store).execute(sql, (account_id,)) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_at_the_cap_a_new_task_is_refused_before_any_charge(tmp_path: Path) -> None:
    async with running(tmp_path, cap_env(3)) as app:
        who = await app.caller()
        accepted = [await submit(app, who, key=f"k{i}") for i in range(3)]
        assert [a.status_code for a in accepted] == [202] * 3
        before = await app.store.balance(who.account_id)

        refused = await submit(app, who, key="k-over")
        error = assert_error(refused, 429, "too_many_tasks")
        assert "3" in error["message"]
        assert "retry-after" not in refused.headers  # nothing says when a task will finish
        assert await app.store.balance(who.account_id) == before == 1000 - 3 * PRICE
        assert await stored_tasks(app.store, who.account_id) == 3
        # Nothing was remembered for the refused key: the same key works once there is room.
        assert await app.store.find_idempotency(who.account_id, "k-over") is None

        replay = await submit(app, who, key="k1")
        assert replay.status_code == 202, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == accepted[1].json()["id"]

        other = await app.caller(name="other")
        assert (await submit(app, other)).status_code == 202


async def test_racing_submissions_get_exactly_the_places_left(tmp_path: Path) -> None:
    async with running(tmp_path, cap_env(5)) as app:
        who = await app.caller()
        assert (await submit(app, who)).status_code == 202
        answers = await asyncio.gather(*(submit(app, who, key=f"race-{i}") for i in range(12)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] * 4 + [429] * 8
        assert await stored_tasks(app.store, who.account_id) == 5
        assert await app.store.balance(who.account_id) == 1000 - 5 * PRICE


async def test_a_cap_of_zero_means_no_cap(tmp_path: Path) -> None:
    async with running(tmp_path, cap_env(0)) as app:
        who = await app.caller(credits=10_000)
        answers = [await submit(app, who) for _ in range(12)]
        assert [a.status_code for a in answers] == [202] * 12


async def test_places_come_back_as_tasks_finish(tmp_path: Path) -> None:
    env = cap_env(2, **FAST)
    async with running(tmp_path, env, over_uvicorn=True, workers=True) as app:
        who = await app.caller()
        # "[sim:fail]": a failed task finishes too, and frees its place as a success does.
        first = await app.http.post("/v1/tasks", json=TASK, headers=who.headers)
        failing = {**TASK, "prompt": "a fox [sim:fail]"}
        second = await app.http.post("/v1/tasks", json=failing, headers=who.headers)
        assert (first.status_code, second.status_code) == (202, 202)
        assert_error(await submit(app, who), 429, "too_many_tasks")

        finished = set()
        for _ in range(200):
            for task in (first.json(), second.json()):
                got = await app.http.get(f"/v1/tasks/{task['id']}", headers=who.headers)
                if TaskStatus(got.json()["status"]).terminal:
                    finished.add(got.json()["status"])
            if len(finished) == 2:
                break
            await asyncio.sleep(0.05)
        assert finished == {"succeeded", "failed"}
        again = [await submit(app, who) for _ in range(3)]
        assert [a.status_code for a in again] == [202, 202, 429]


@pytest.mark.sqlite_only  # SQLite's query plan
async def test_the_count_reads_one_index_and_no_further_than_the_cap(tmp_path: Path) -> None:
    store = make_store(tmp_path / "count.db")
    await store.open()
    try:
        account = await create_account(store, system_clock, "counted")
        other = await create_account(store, system_clock, "other")
        statuses = [*TaskStatus, TaskStatus.QUEUED, TaskStatus.RUNNING]
        async with store.transaction() as tx:
            for n, status in enumerate(statuses):
                await tx.insert_task(make_task(account.id, n + 1, status))
            await tx.insert_task(make_task(other.id, 99))
        in_flight = sum(1 for s in statuses if not s.terminal)
        assert in_flight == 5
        assert await store.count_in_flight(account.id, 100) == 5
        assert await store.count_in_flight(account.id, 2) == 2
        assert await store.count_in_flight(other.id, 100) == 1
        async with store.transaction() as tx:
            assert await tx.count_in_flight(account.id, 100) == 5

        async with reader(store).execute(f"EXPLAIN QUERY PLAN {IN_FLIGHT}", ("a", 1)) as cur:
            plan = [row[3] for row in await cur.fetchall()]
        assert any("USING COVERING INDEX tasks_by_account_status" in line for line in plan), plan
        assert not [line for line in plan if line.startswith("SCAN tasks")], plan
    finally:
        await store.close()
