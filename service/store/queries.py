"""Every SQL statement taskhook runs against SQLite, and the mapping of rows to core objects.

``Queries`` wraps one connection: the reader for plain reads, the writer inside a transaction.
Lists fetch ``limit + 1`` rows so the caller can tell whether another page exists.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import aiosqlite

from service.core.credits import CreditEntry, EntryKind
from service.core.events import Event
from service.core.ledger import Failure, Outcome, Result, TaskState, TaskStatus
from service.core.pagination import PageRequest
from service.core.tasks import Task, TaskSpec
from service.core.timeline import EntryKind as TimelineKind
from service.core.timeline import TimelineEntry
from service.store.base import Account, ApiKey, IdempotencyRecord, ModerationBlock, TaskFilter

_TASK_COLUMNS = (
    "id, account_id, status, progress, sequence, model, provider, provider_task_id, type, prompt,"
    " params, results, failure_code, failure_message, cost_credits, refunded_credits, metadata,"
    " created_at, updated_at, completed_at"
)


class Queries:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Row | None:
        async with self._conn.execute(sql, args) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    # -- accounts and keys -------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._one(
            "SELECT id, name, created_at FROM accounts WHERE id = ?", (account_id,)
        )
        return Account(row["id"], row["name"], row["created_at"]) if row else None

    async def insert_account(self, account: Account) -> None:
        await self._conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
            (account.id, account.name, account.created_at),
        )

    async def insert_api_key(self, key: ApiKey) -> None:
        await self._conn.execute(
            "INSERT INTO api_keys (id, account_id, prefix, key_hash, is_admin, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, key.account_id, key.prefix, key.key_hash, int(key.is_admin), key.created_at),
        )

    async def revoke_api_key(self, key_id: str, now_ms: int) -> bool:
        cursor = await self._conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now_ms, key_id),
        )
        return cursor.rowcount == 1

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        row = await self._one(
            "SELECT id, account_id, prefix, key_hash, is_admin, created_at, revoked_at"
            " FROM api_keys WHERE prefix = ?",
            (prefix,),
        )
        if row is None:
            return None
        return ApiKey(
            row["id"],
            row["account_id"],
            row["prefix"],
            row["key_hash"],
            bool(row["is_admin"]),
            row["created_at"],
            row["revoked_at"],
        )

    # -- credits -----------------------------------------------------------------------------

    async def balance(self, account_id: str) -> int:
        row = await self._one(
            "SELECT COALESCE(SUM(delta), 0) AS total FROM credit_entries WHERE account_id = ?",
            (account_id,),
        )
        return int(row["total"]) if row else 0

    async def insert_credit_entry(self, entry: CreditEntry) -> None:
        await self._conn.execute(
            "INSERT INTO credit_entries (id, account_id, kind, delta, task_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.account_id,
                str(entry.kind),
                entry.delta,
                entry.task_id,
                entry.created_at,
            ),
        )

    async def list_credit_entries(self, account_id: str, page: PageRequest) -> list[CreditEntry]:
        rows = await self._all(
            "SELECT id, account_id, kind, delta, task_id, created_at FROM credit_entries"
            " WHERE account_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (account_id, page.before or "~", page.limit + 1),
        )
        return [
            CreditEntry(
                r["id"],
                r["account_id"],
                EntryKind(r["kind"]),
                r["delta"],
                r["task_id"],
                r["created_at"],
            )
            for r in rows
        ]

    # -- tasks -------------------------------------------------------------------------------

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        row = await self._one(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ? AND account_id = ?",  # noqa: S608
            (task_id, account_id),
        )
        return _task(row) if row else None

    async def insert_task(self, task: Task) -> None:
        spec, state = task.spec, task.state
        await self._conn.execute(
            f"INSERT INTO tasks ({_TASK_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.id,
                task.account_id,
                str(state.status),
                state.progress,
                state.sequence,
                spec.model,
                spec.provider,
                state.provider_task_id,
                spec.type,
                spec.prompt,
                _json(spec.params),
                _json([r.__dict__ for r in state.results]),
                state.failure.code if state.failure else None,
                state.failure.message if state.failure else None,
                task.cost_credits,
                task.refunded_credits,
                _json(dict(spec.metadata)),
                task.created_at,
                state.updated_at,
                state.completed_at,
            ),
        )

    async def list_tasks(self, account_id: str, where: TaskFilter, page: PageRequest) -> list[Task]:
        clauses: list[str] = ["account_id = ?", "id < ?"]
        args: list[str | int] = [account_id, page.before or "~"]
        if where.status is not None:
            clauses.append("status = ?")
            args.append(where.status)
        if where.model is not None:
            clauses.append("model = ?")
            args.append(where.model)
        if where.created_after is not None:
            clauses.append("created_at > ?")
            args.append(where.created_after)
        rows = await self._all(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            (*args, page.limit + 1),
        )
        return [_task(row) for row in rows]

    # -- timeline, events, idempotency, moderation -------------------------------------------

    async def insert_timeline(self, entry: TimelineEntry) -> None:
        await self._conn.execute(
            "INSERT INTO timeline (id, task_id, kind, source, outcome, status, progress, sequence,"
            " detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.task_id,
                str(entry.kind),
                entry.source,
                str(entry.outcome),
                str(entry.status),
                entry.progress,
                entry.sequence,
                entry.detail,
                entry.created_at,
            ),
        )

    async def list_timeline(self, task_id: str) -> list[TimelineEntry]:
        rows = await self._all(
            "SELECT id, task_id, kind, source, outcome, status, progress, sequence, detail,"
            " created_at FROM timeline WHERE task_id = ? ORDER BY id",
            (task_id,),
        )
        return [
            TimelineEntry(
                r["id"],
                r["task_id"],
                TimelineKind(r["kind"]),
                r["source"],
                Outcome(r["outcome"]),
                TaskStatus(r["status"]),
                r["progress"],
                r["sequence"],
                r["detail"],
                r["created_at"],
            )
            for r in rows
        ]

    async def insert_event(self, event: Event) -> None:
        await self._conn.execute(
            "INSERT INTO events (id, account_id, type, task_id, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.account_id,
                event.type,
                event.task_id,
                event.payload,
                event.created_at,
            ),
        )

    async def find_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(
            "SELECT account_id, key, fingerprint, task_id, created_at FROM idempotency_keys"
            " WHERE account_id = ? AND key = ?",
            (account_id, key),
        )
        if row is None:
            return None
        return IdempotencyRecord(
            row["account_id"], row["key"], row["fingerprint"], row["task_id"], row["created_at"]
        )

    async def put_idempotency(self, record: IdempotencyRecord) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO idempotency_keys (account_id, key, fingerprint, task_id,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            (record.account_id, record.key, record.fingerprint, record.task_id, record.created_at),
        )

    async def insert_moderation_block(self, block: ModerationBlock) -> None:
        await self._conn.execute(
            "INSERT INTO moderation_log (id, account_id, rule_id, category, prompt_sha256,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                block.id,
                block.account_id,
                block.rule_id,
                block.category,
                block.prompt_sha256,
                block.created_at,
            ),
        )

    async def list_moderation_blocks(self, account_id: str) -> list[ModerationBlock]:
        rows = await self._all(
            "SELECT id, account_id, rule_id, category, prompt_sha256, created_at"
            " FROM moderation_log WHERE account_id = ? ORDER BY id",
            (account_id,),
        )
        return [ModerationBlock(*tuple(r)) for r in rows]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _task(row: sqlite3.Row) -> Task:
    params = json.loads(row["params"])
    failure = Failure(row["failure_code"], row["failure_message"]) if row["failure_code"] else None
    spec = TaskSpec(
        prompt=row["prompt"],
        model=row["model"],
        type=row["type"],
        provider=row["provider"],
        images=tuple(params["images"]),
        aspect_ratio=params["aspect_ratio"],
        resolution=params["resolution"],
        output_format=params["output_format"],
        num_images=params["num_images"],
        seed=params["seed"],
        metadata=json.loads(row["metadata"]),
    )
    state = TaskState(
        status=TaskStatus(row["status"]),
        progress=row["progress"],
        sequence=row["sequence"],
        provider_task_id=row["provider_task_id"],
        results=tuple(Result(**r) for r in json.loads(row["results"])),
        failure=failure,
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )
    return Task(
        id=row["id"],
        account_id=row["account_id"],
        spec=spec,
        state=state,
        cost_credits=row["cost_credits"],
        refunded_credits=row["refunded_credits"],
        created_at=row["created_at"],
    )
