"""Every SQL statement taskhook runs against SQLite, and the mapping of rows to core objects.

``Queries`` wraps one connection: the reader for plain reads, the writer inside a transaction.
Lists fetch ``limit + 1`` rows so the caller can tell whether another page exists.
"""

from __future__ import annotations

import json
import secrets
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
from service.store.base import (
    Account,
    ApiKey,
    CallbackRecord,
    Claimed,
    IdempotencyRecord,
    ModerationBlock,
    TaskFilter,
)

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

    async def get_task_by_id(self, task_id: str) -> Task | None:
        row = await self._one(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?",  # noqa: S608
            (task_id,),
        )
        return _task(row) if row else None

    async def update_task(self, task: Task) -> None:
        state = task.state
        await self._conn.execute(
            "UPDATE tasks SET status = ?, progress = ?, sequence = ?, provider_task_id = ?,"
            " results = ?, failure_code = ?, failure_message = ?, refunded_credits = ?,"
            " updated_at = ?, completed_at = ? WHERE id = ?",
            (
                str(state.status), state.progress, state.sequence, state.provider_task_id,
                _json([r.__dict__ for r in state.results]),
                state.failure.code if state.failure else None,
                state.failure.message if state.failure else None,
                task.refunded_credits, state.updated_at, state.completed_at, task.id,
            ),
        )  # fmt: skip

    async def schedule_task(self, task_id: str, next_check_at: int | None) -> None:
        await self._conn.execute(
            "UPDATE tasks SET next_check_at = ? WHERE id = ?", (next_check_at, task_id)
        )

    async def claim_due_tasks(
        self, statuses: tuple[str, ...], now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        token = secrets.token_hex(8)
        marks = ", ".join("?" for _ in statuses)
        rows = await self._all(
            "UPDATE tasks SET lease_until = ?, claim_token = ? WHERE id IN ("  # noqa: S608
            " SELECT id FROM tasks WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
            f" AND status IN ({marks}) AND (lease_until IS NULL OR lease_until <= ?)"
            " ORDER BY next_check_at LIMIT ?)"
            f" RETURNING {_TASK_COLUMNS}, submit_attempts, submitted_at",
            (now_ms + lease_ms, token, now_ms, *statuses, now_ms, limit),
        )
        return [Claimed(_task(r), token, r["submit_attempts"], r["submitted_at"]) for r in rows]

    async def release_task(
        self,
        claimed: Claimed,
        next_check_at: int | None,
        *,
        submit_attempts: int | None = None,
        submitted_at: int | None = None,
    ) -> bool:
        cursor = await self._conn.execute(
            "UPDATE tasks SET next_check_at = ?, lease_until = NULL, claim_token = NULL,"
            " submit_attempts = COALESCE(?, submit_attempts),"
            " submitted_at = COALESCE(?, submitted_at)"
            " WHERE id = ? AND claim_token = ?",
            (next_check_at, submit_attempts, submitted_at, claimed.task.id, claimed.claim_token),
        )
        return cursor.rowcount == 1

    async def insert_task(self, task: Task) -> None:
        spec, state = task.spec, task.state
        # A new task is due for submission at once: next_check_at = created_at.
        await self._conn.execute(
            f"INSERT INTO tasks ({_TASK_COLUMNS}, next_check_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                None if state.status.terminal else task.created_at,
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

    # -- callbacks ---------------------------------------------------------------------------

    async def insert_callback(self, record: CallbackRecord) -> None:
        await self._conn.execute(
            f"INSERT INTO callbacks ({_CALLBACK_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id, record.account_id, record.task_id, record.provider,
                record.provider_task_id, _json(record.headers), record.body, record.verdict,
                record.outcome, record.detail, record.received_at, record.applied_at,
            ),
        )  # fmt: skip

    async def set_callback_outcome(
        self, callback_id: str, outcome: str, detail: str, applied_at: int | None
    ) -> None:
        await self._conn.execute(
            "UPDATE callbacks SET outcome = ?, detail = ?, applied_at = ? WHERE id = ?",
            (outcome, detail, applied_at, callback_id),
        )

    async def get_callback(self, account_id: str, callback_id: str) -> CallbackRecord | None:
        row = await self._one(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE id = ? AND account_id = ?",  # noqa: S608
            (callback_id, account_id),
        )
        return _callback(row) if row else None

    async def list_callbacks(
        self, account_id: str, task_id: str | None, page: PageRequest
    ) -> list[CallbackRecord]:
        where = "account_id = ? AND id < ?" + (" AND task_id = ?" if task_id else "")
        args: tuple[str | int, ...] = (account_id, page.before or "~")
        rows = await self._all(
            f"SELECT {_CALLBACK_COLUMNS} FROM callbacks WHERE {where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            (*args, *((task_id,) if task_id else ()), page.limit + 1),
        )
        return [_callback(r) for r in rows]


_CALLBACK_COLUMNS = (
    "id, account_id, task_id, provider, provider_task_id, headers, body, verdict, outcome,"
    " detail, received_at, applied_at"
)


def _callback(row: sqlite3.Row) -> CallbackRecord:
    return CallbackRecord(
        id=row["id"],
        account_id=row["account_id"],
        task_id=row["task_id"],
        provider=row["provider"],
        provider_task_id=row["provider_task_id"],
        headers=json.loads(row["headers"]),
        body=bytes(row["body"]),
        verdict=row["verdict"],
        outcome=row["outcome"],
        detail=row["detail"],
        received_at=row["received_at"],
        applied_at=row["applied_at"],
    )


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
