"""``SqliteStore``: the ``Store`` interface over one SQLite file (WAL, single writer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiosqlite

from service.core.credits import CreditEntry
from service.core.endpoints import Endpoint
from service.core.events import Event
from service.core.pagination import PageRequest
from service.core.secretbox import SecretBox
from service.core.tasks import Task
from service.core.timeline import TimelineEntry
from service.errors import StoreError
from service.store.base import (
    Account,
    ApiKey,
    Attempt,
    CallbackRecord,
    Claimed,
    ClaimedDelivery,
    DecisionFilter,
    Delivery,
    EventFilter,
    IdempotencyRecord,
    ModerationDecision,
    OpsCounts,
    TaskFilter,
    Transaction,
)
from service.store.database import Database
from service.store.inline import InlineConnection
from service.store.migrate import migrate
from service.store.queries import Queries
from service.store.sealing import StoredSecrets, reencrypt, seal_plaintext


class SqliteStore:
    """``secrets``: the box endpoint secrets are sealed with (``app.open_store`` passes the one
    the secret keys make); a store without one cannot read or write endpoints."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "FULL",
        secrets: SecretBox | None = None,
    ):
        self.db = Database(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        self._secrets = None if secrets is None else StoredSecrets(secrets)
        self._reads: Queries | None = None

    async def open(self) -> list[str]:
        """Open the connections, apply pending migrations and seal any secret still in the
        clear; returns what was applied. Refuses a database whose secrets name a key that is
        not configured."""
        await self.db.open()
        try:
            applied = await self.db.exclusive(migrate)
            if self._secrets is not None:
                sealed = await self.db.exclusive(partial(seal_plaintext, secrets=self._secrets))
                if sealed:
                    applied.append(f"seal_endpoint_secrets ({sealed} sealed)")
        except BaseException:
            await self.db.close()
            raise
        self._reads = self.queries(self.db.reader)
        return applied

    def queries(self, conn: InlineConnection | aiosqlite.Connection) -> Queries:
        """Every query, on ``conn``, sealing and opening secrets with this store's box."""
        return Queries(conn, self._secrets)

    async def reencrypt_secrets(self) -> int:
        """``taskhook secrets reencrypt``: every stored secret not under the current key moves
        to it, a batch per transaction; returns how many moved."""
        if self._secrets is None:
            raise StoreError("This store was opened without a secret key.")
        return await self.db.exclusive(partial(reencrypt, secrets=self._secrets))

    async def close(self) -> None:
        await self.db.close()
        self._reads = None

    @property
    def _r(self) -> Queries:
        if self._reads is None:
            self._reads = self.queries(self.db.reader)
        return self._reads

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Transaction]:
        async with self.db.transaction(durable=durable) as conn:
            yield self.queries(conn)

    async def check_writable(self) -> None:
        """Take the write lock and let it go: proves the file is open for writing."""
        async with self.db.transaction():
            pass

    async def ops_counts(self, now_ms: int) -> OpsCounts:
        return await self.queries(self.db.scan_reader).ops_counts(now_ms)

    async def get_account(self, account_id: str) -> Account | None:
        return await self._r.get_account(account_id)

    async def balance(self, account_id: str) -> int:
        return await self._r.balance(account_id)

    async def get_task(self, account_id: str, task_id: str) -> Task | None:
        return await self._r.get_task(account_id, task_id)

    async def find_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None:
        return await self._r.find_idempotency(account_id, key)

    async def get_task_by_id(self, task_id: str) -> Task | None:
        return await self._r.get_task_by_id(task_id)

    async def count_in_flight(self, account_id: str, up_to: int) -> int:
        return await self._r.count_in_flight(account_id, up_to)

    async def get_callback(self, account_id: str, callback_id: str) -> CallbackRecord | None:
        return await self._r.get_callback(account_id, callback_id)

    async def list_callbacks(
        self, account_id: str, task_id: str | None, page: PageRequest
    ) -> list[CallbackRecord]:
        return await self._r.list_callbacks(account_id, task_id, page)

    async def claim_due_tasks(
        self, statuses: tuple[str, ...], now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        async with self.db.transaction(durable=False) as conn:  # a lease, safe to lose
            return await self.queries(conn).claim_due_tasks(statuses, now_ms, lease_ms, limit)

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        return await self._r.find_api_key(prefix)

    async def list_tasks(self, account_id: str, where: TaskFilter, page: PageRequest) -> list[Task]:
        return await self._r.list_tasks(account_id, where, page)

    async def list_timeline(self, task_id: str) -> list[TimelineEntry]:
        return await self._r.list_timeline(task_id)

    async def list_credit_entries(self, account_id: str, page: PageRequest) -> list[CreditEntry]:
        return await self._r.list_credit_entries(account_id, page)

    async def list_moderation_decisions(
        self, where: DecisionFilter, page: PageRequest
    ) -> list[ModerationDecision]:
        return await self._r.list_moderation_decisions(where, page)

    # -- endpoints, deliveries, attempts -----------------------------------------------------

    async def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        return await self._r.get_endpoint(account_id, endpoint_id)

    async def get_endpoint_by_id(self, endpoint_id: str) -> Endpoint | None:
        return await self._r.get_endpoint_by_id(endpoint_id)

    async def endpoints_for_account(self, account_id: str) -> list[Endpoint]:
        return await self._r.endpoints_for_account(account_id)

    async def list_endpoints(self, account_id: str, page: PageRequest) -> list[Endpoint]:
        return await self._r.list_endpoints(account_id, page)

    async def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None:
        return await self._r.get_delivery(account_id, delivery_id)

    async def claim_due_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedDelivery]:
        async with self.db.transaction(durable=False) as conn:  # a lease, safe to lose
            return await self.queries(conn).claim_due_deliveries(now_ms, lease_ms, limit)

    async def list_deliveries_for_event(self, event_id: str, page: PageRequest) -> list[Delivery]:
        return await self._r.list_deliveries_for_event(event_id, page)

    async def list_deliveries_for_endpoint(
        self, endpoint_id: str, status: str | None, page: PageRequest
    ) -> list[Delivery]:
        return await self._r.list_deliveries_for_endpoint(endpoint_id, status, page)

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        return await self._r.list_attempts(delivery_id)

    # -- the event log and replays -----------------------------------------------------------

    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        return await self._r.get_event(account_id, event_id)

    async def get_event_by_id(self, event_id: str) -> Event | None:
        return await self._r.get_event_by_id(event_id)

    async def get_callback_by_id(self, callback_id: str) -> CallbackRecord | None:
        return await self._r.get_callback_by_id(callback_id)

    async def recoverable_events(self, endpoint_id: str, since: int, until: int) -> list[Event]:
        return await self.queries(self.db.scan_reader).recoverable_events(endpoint_id, since, until)

    async def list_events(
        self, account_id: str, where: EventFilter, page: PageRequest
    ) -> list[Event]:
        return await self._r.list_events(account_id, where, page)

    async def list_attempts_after(
        self, delivery_id: str, after_id: str | None, limit: int
    ) -> list[Attempt]:
        return await self._r.list_attempts_after(delivery_id, after_id, limit)
