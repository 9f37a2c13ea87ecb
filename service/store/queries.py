"""SQL for accounts, keys, credits, timeline, events and idempotency keys.

Together with ``task_queries`` (tasks, claims, callbacks), ``delivery_queries`` (endpoints,
deliveries, attempts) and ``moderation_queries`` (the decision log) this is every statement
taskhook runs against SQLite. ``Queries`` wraps one connection: the reader for plain reads, the
writer inside a transaction. Lists fetch ``limit + 1`` rows so the caller can tell whether
another page exists.
"""

from __future__ import annotations

from service.core.credits import CreditEntry, EntryKind
from service.core.events import Event
from service.core.ledger import Outcome, TaskStatus
from service.core.pagination import PageRequest
from service.core.timeline import EntryKind as TimelineKind
from service.core.timeline import TimelineEntry
from service.store.asset_queries import AssetQueries
from service.store.base import Account, ApiKey, IdempotencyRecord
from service.store.delivery_queries import DeliveryQueries
from service.store.event_queries import EventQueries
from service.store.moderation_queries import ModerationQueries
from service.store.ops_queries import OpsQueries
from service.store.task_queries import TaskQueries


class Queries(
    TaskQueries, DeliveryQueries, EventQueries, OpsQueries, ModerationQueries, AssetQueries
):
    """Every query, on one connection (see ``TaskQueries`` for tasks and callbacks,
    ``DeliveryQueries`` for endpoints, deliveries and attempts, ``EventQueries`` for the event
    log and replays, ``ModerationQueries`` for the moderation decisions, ``AssetQueries`` for kept
    images and mirror jobs)."""

    # -- accounts and keys -------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._one(
            "SELECT id, name, created_at FROM accounts WHERE id = ?", (account_id,)
        )
        return Account(row["id"], row["name"], row["created_at"]) if row else None

    async def lock_account(self, account_id: str) -> None:
        """Hold the account until the transaction ends: its submits, which read the balance
        and the idempotency keys before they write, then run one at a time."""
        sql = f"SELECT id FROM accounts WHERE id = ?{self._row_lock}"  # noqa: S608
        await self._one(sql, (account_id,))

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

    # -- timeline, events, idempotency -----------------------------------------------------

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
        # Insertion order, not id order: ids made in the same millisecond sort at random.
        rows = await self._all(
            "SELECT id, task_id, kind, source, outcome, status, progress, sequence, detail,"
            " created_at FROM timeline WHERE task_id = ? ORDER BY rowid",
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
            "INSERT INTO idempotency_keys (account_id, key, fingerprint, task_id, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, task_id = excluded.task_id,"
            " created_at = excluded.created_at",
            (record.account_id, record.key, record.fingerprint, record.task_id, record.created_at),
        )
