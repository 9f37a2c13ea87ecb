"""The SQLite database ``db copy`` tests copy: filled through the API and the use cases where
they reach, else through the store's own transactions, with something in every table."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.app import create_app
from service.core.clock import system_clock
from service.core.credits import refund
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.core.ledger import Failure, TaskStatus
from service.outbox import record_event
from service.settings import Settings, load_settings
from service.store.base import Attempt, CallbackRecord, DeliveryOutcome, Store
from service.usecases import create_account, create_api_key, grant_credits, revoke_api_key
from tests.conftest import EXTERNAL_PROVIDERS, settings_env

BODY = bytes(range(256)) * 3  # not UTF-8: a callback body is kept as the bytes that came


@dataclass(frozen=True)
class Filled:
    path: Path
    accounts: list[str]
    endpoint_id: str
    endpoint_secret: str


def sqlite_settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'source.db'}"  # an absolute path: sqlite:////tmp/…
    return load_settings(settings_env(tmp_path, TASKHOOK_DATABASE_URL=url, **EXTERNAL_PROVIDERS))


async def fill(settings: Settings) -> Filled:
    """Accounts, keys, tasks in every status, callbacks, events, an endpoint, deliveries and
    attempts, moderation decisions, grants, charges and refunds: through the API where it
    reaches, else through the store's own transactions."""
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        store: Store = app.state.services.store
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            accounts = []
            for name, credits in (("acme", 1000), ("beta", 300), ("idle", 0)):
                account = await create_account(store, system_clock, name, credits)
                accounts.append(account.id)
            acme, beta = accounts[0], accounts[1]
            _, raw = await create_api_key(store, system_clock, acme)
            _, raw_b = await create_api_key(store, system_clock, beta)
            old, _ = await create_api_key(store, system_clock, beta, admin=True)
            await revoke_api_key(store, system_clock, old.id)
            await grant_credits(store, system_clock, beta, 55)
            auth = {"Authorization": f"Bearer {raw}"}
            created = await client.post(
                "/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=auth
            )
            assert created.status_code == 201, created.text
            endpoint = created.json()
            task_ids = []
            for n in range(6):
                headers = {**auth, "Idempotency-Key": f"k{n}"} if n % 2 else auth
                body = {"prompt": f"a red fox, take {n}", "model": "nano-banana"}
                response = await client.post("/v1/tasks", json=body, headers=headers)
                assert response.status_code == 202, response.text
                task_ids.append(response.json()["id"])
            b_task = await client.post(
                "/v1/tasks",
                json={"prompt": "a lighthouse", "model": "nano-banana"},
                headers={"Authorization": f"Bearer {raw_b}"},
            )
            assert b_task.status_code == 202
            blocked = await client.post(
                "/v1/tasks", json={"prompt": "a nude portrait", "model": "nano-banana"},
                headers=auth,
            )  # fmt: skip
            assert blocked.status_code == 422
        await _finish_some(store, task_ids, endpoint["id"])
    return Filled(settings.storage.database_path, accounts, endpoint["id"], endpoint["secret"])


async def _finish_some(store: Store, task_ids: list[str], endpoint_id: str) -> None:
    """Tasks moved on (succeeded, failed and refunded, running), callbacks with binary
    bodies, an event whose deliveries are sent: one delivered, attempts recorded."""
    now = system_clock()
    async with store.transaction() as tx:
        for n, task_id in enumerate(task_ids[:4]):
            task = await tx.get_task_by_id(task_id)
            assert task is not None
            status = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.RUNNING)[n % 3]
            state = replace(task.state, status=status, progress=100 if n % 3 < 2 else 40,
                            sequence=task.state.sequence + 1, updated_at=now)  # fmt: skip
            if status is TaskStatus.FAILED:
                state = replace(state, failure=Failure("provider_error", "nul \x00 in it"))
                back = refund(new_id("cred", now), task.account_id, task.id,
                              task.cost_credits, 0, now)  # fmt: skip
                assert back is not None
                await tx.insert_credit_entry(back)
                task = replace(task, refunded_credits=back.delta)
            await tx.update_task(replace(task, state=state), next_check_at=None)
            record = CallbackRecord(
                id=new_id("cb", now + n), account_id=task.account_id, task_id=task.id,
                provider="simulator", provider_task_id=None, headers={"x-sig": "s"},
                body=BODY, verdict="verified", outcome="pending", detail="", received_at=now,
            )  # fmt: skip
            await tx.insert_callback(record)
            if n % 2:
                await tx.set_callback_outcome(record.id, "applied", "ok", now)
        assert task is not None
        event = Event(new_id("evt", now), task.account_id, "task.succeeded", task.id,
                      envelope("task.succeeded", {"n": 1}, now), now)  # fmt: skip
        await record_event(tx, event, now)
    claimed = await store.claim_due_deliveries(now + 60_000, 30_000, 100)
    assert claimed, "the endpoint subscribes to every event"
    async with store.transaction() as tx:
        outcomes = [
            DeliveryOutcome(
                c,
                "delivered" if i == 0 else "pending",
                None if i == 0 else now,
                1,
                200 if i == 0 else 503,
                None,
                now,
            )
            for i, c in enumerate(claimed)
        ]
        await tx.finish_deliveries(outcomes)
        await tx.insert_attempts(
            [
                Attempt(
                    new_id("att", now + i),
                    c.delivery.id,
                    1,
                    200 if i == 0 else 503,
                    12,
                    "ok\x00",
                    None,
                    False,
                    now,
                )
                for i, c in enumerate(claimed)
            ]
        )


async def pg_rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


class SqliteStoreView:
    """The source file, read directly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, table: str) -> int:
        return int(sqlite_rows(self.path, f"SELECT COUNT(*) FROM {table}")[0][0])  # noqa: S608

    def balances(self, accounts: list[str]) -> list[int]:
        sums = dict(sqlite_rows(self.path, "SELECT account_id, SUM(delta) FROM credit_entries"
                                " GROUP BY account_id"))  # fmt: skip
        return [int(sums.get(a, 0)) for a in accounts]

    def ids(self, table: str, account: str) -> list[str]:
        rows = sqlite_rows(self.path, f"SELECT id, account_id FROM {table} ORDER BY id DESC")  # noqa: S608
        return [r[0] for r in rows if r[1] == account]
