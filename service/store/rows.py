"""The SQL plumbing every query module shares, and the mapping of rows to core objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import aiosqlite

from service.core import compactjson
from service.core.ledger import Failure, Result, TaskState, TaskStatus
from service.core.pagination import PageRequest
from service.core.tasks import Task, TaskSpec
from service.errors import StoreError
from service.store.base import CallbackRecord
from service.store.inline import InlineConnection
from service.store.postgres.connection import PgConnection
from service.store.sealing import StoredSecrets


class Row(Protocol):
    """A result row, by column name or position: ``Row`` and ``asyncpg.Record``."""

    def __getitem__(self, key: Any, /) -> Any: ...


#: the connections the shared queries run on: SQLite's reader and writer, asyncpg's pool or one
#: of its connections (``service.store.postgres.connection``)
Connection = aiosqlite.Connection | InlineConnection | PgConnection

TASK_COLUMNS = (
    "id, account_id, status, progress, sequence, model, provider, provider_task_id, type, prompt,"
    " params, results, failure_code, failure_message, cost_credits, refunded_credits, metadata,"
    " created_at, updated_at, completed_at"
)


class Sql:
    """One connection: the reader for plain reads, the writer inside a transaction.
    ``secrets`` seals and opens the secrets some rows hold (see ``service.store.sealing``).

    Two clauses differ by dialect and are attributes, so the statements stay shared: ``_row_lock``
    follows a read of a row a transaction will change (PostgreSQL's ``FOR UPDATE``: SQLite's one
    writer already serialises them), ``_skip_locked`` follows a claim's choice of rows (``FOR
    UPDATE SKIP LOCKED``: two workers never pick the same ones)."""

    _row_lock = ""
    _skip_locked = ""

    def __init__(self, conn: Connection, secrets: StoredSecrets | None = None) -> None:
        self._conn = conn
        self._stored_secrets = secrets

    @property
    def _secrets(self) -> StoredSecrets:
        if self._stored_secrets is None:
            raise StoreError(
                "This store was opened without a secret key: it cannot read or"
                " write stored secrets."
            )
        return self._stored_secrets

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None:
        async with self._conn.execute(sql, args) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        async with self._conn.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def _newest_first(
        self,
        table: str,
        columns: str,
        account_id: str,
        page: PageRequest,
        filters: Sequence[tuple[str, str | int | None]] = (),
    ) -> list[Row]:
        """A page of an account's rows, newest first (ids are time-ordered), fetching
        ``limit + 1`` so the caller can tell whether another page exists. ``filters`` are
        ``("column = ?", value)`` pairs, applied where the value is not ``None``."""
        clauses = ["account_id = ?", "id < ?"]
        args: list[str | int] = [account_id, page.before or "~"]
        for clause, value in filters:
            if value is not None:
                clauses.append(clause)
                args.append(value)
        return await self._all(
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            (*args, page.limit + 1),
        )


CALLBACK_COLUMNS = (
    "id, account_id, task_id, provider, provider_task_id, headers, body, verdict, outcome,"
    " detail, received_at, applied_at"
)


def callback_from_row(row: Row) -> CallbackRecord:
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


def to_json(value: object) -> str:
    return compactjson.dumps(value)


def task_from_row(row: Row) -> Task:
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
