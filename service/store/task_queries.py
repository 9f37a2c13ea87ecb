"""SQL for tasks (including the workers' claims and leases) and the inbound callback log."""

from __future__ import annotations

import secrets
from dataclasses import asdict

from service.core.ledger import TaskStatus
from service.core.pagination import PageRequest
from service.core.tasks import Task
from service.store.base import CallbackRecord, Claimed, Keep, TaskFilter
from service.store.rows import (
    CALLBACK_COLUMNS,
    TASK_COLUMNS,
    Sql,
    callback_from_row,
    task_from_row,
    to_json,
)

#: the account's unfinished tasks, counted through ``tasks_by_account_status`` alone (one range
#: per status) and no further than the cap asks
IN_FLIGHT = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE account_id = ? AND status IN ("  # noqa: S608
    + ", ".join(f"'{s}'" for s in TaskStatus if not s.terminal)  # fixed names, not input
    + ") LIMIT ?) AS live"
)


class TaskQueries(Sql):
    # -- tasks -------------------------------------------------------------------------------

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        row = await self._one(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND account_id = ?{self._row_lock}",  # noqa: S608
            (task_id, account_id),
        )
        return task_from_row(row) if row else None

    async def get_task_by_id(self, task_id: str) -> Task | None:
        row = await self._one(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?{self._row_lock}",  # noqa: S608
            (task_id,),
        )
        return task_from_row(row) if row else None

    async def count_in_flight(self, account_id: str, up_to: int) -> int:
        row = await self._one(IN_FLIGHT, (account_id, up_to))
        return int(row[0]) if row else 0

    async def update_task(
        self, task: Task, *, next_check_at: int | Keep | None = Keep.SCHEDULE
    ) -> None:
        state = task.state
        schedule = next_check_at is not Keep.SCHEDULE
        await self._conn.execute(
            "UPDATE tasks SET status = ?, progress = ?, sequence = ?, provider_task_id = ?,"  # noqa: S608
            " results = ?, failure_code = ?, failure_message = ?, refunded_credits = ?,"
            " updated_at = ?, completed_at = ?"
            + (", next_check_at = ?" if schedule else "")  # a fixed column, chosen by a flag
            + " WHERE id = ?",
            (
                str(state.status), state.progress, state.sequence, state.provider_task_id,
                to_json([asdict(r) for r in state.results]),
                state.failure.code if state.failure else None,
                state.failure.message if state.failure else None,
                task.refunded_credits, state.updated_at, state.completed_at,
                *((next_check_at,) if schedule else ()),
                task.id,
            ),
        )  # fmt: skip

    async def claim_due_tasks(
        self, statuses: tuple[str, ...], now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        token = secrets.token_hex(8)
        marks = ", ".join("?" for _ in statuses)
        rows = await self._all(
            "UPDATE tasks SET lease_until = ?, claim_token = ? WHERE id IN ("  # noqa: S608
            " SELECT id FROM tasks WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
            f" AND status IN ({marks}) AND (lease_until IS NULL OR lease_until <= ?)"
            f" ORDER BY next_check_at LIMIT ?{self._skip_locked})"
            f" RETURNING {TASK_COLUMNS}, submit_attempts, submitted_at",
            (now_ms + lease_ms, token, now_ms, *statuses, now_ms, limit),
        )
        return [
            Claimed(task_from_row(r), token, r["submit_attempts"], r["submitted_at"]) for r in rows
        ]

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
            f"INSERT INTO tasks ({TASK_COLUMNS}, next_check_at)"  # noqa: S608
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
                to_json(spec.params),
                to_json([asdict(r) for r in state.results]),
                state.failure.code if state.failure else None,
                state.failure.message if state.failure else None,
                task.cost_credits,
                task.refunded_credits,
                to_json(dict(spec.metadata)),
                task.created_at,
                state.updated_at,
                state.completed_at,
                None if state.status.terminal else task.created_at,
            ),
        )

    async def list_tasks(self, account_id: str, where: TaskFilter, page: PageRequest) -> list[Task]:
        filters = [
            ("status = ?", where.status),
            ("model = ?", where.model),
            ("created_at > ?", where.created_after),
        ]
        rows = await self._newest_first("tasks", TASK_COLUMNS, account_id, page, filters)
        return [task_from_row(row) for row in rows]

    # -- callbacks ---------------------------------------------------------------------------

    async def insert_callback(self, record: CallbackRecord) -> None:
        await self._conn.execute(
            f"INSERT INTO callbacks ({CALLBACK_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id, record.account_id, record.task_id, record.provider,
                record.provider_task_id, to_json(record.headers), record.body, record.verdict,
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
            f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = ? AND account_id = ?",  # noqa: S608
            (callback_id, account_id),
        )
        return callback_from_row(row) if row else None

    async def list_callbacks(
        self, account_id: str, task_id: str | None, page: PageRequest
    ) -> list[CallbackRecord]:
        filters = [("task_id = ?", task_id or None)]
        rows = await self._newest_first("callbacks", CALLBACK_COLUMNS, account_id, page, filters)
        return [callback_from_row(r) for r in rows]
