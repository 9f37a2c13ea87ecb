"""What both stores share: every read and claim, answered by the shared query modules.

A store provides three things — ``_r`` (queries for plain indexed reads), ``_scan`` (for
reads that may walk many rows) and ``_writing`` (a transaction's queries) — and inherits the
rest of the ``Store`` interface from here, so SQLite and PostgreSQL answer each call with the
same statement text wherever the dialects agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from service.core.assets import Asset, ClaimedMirror
from service.core.credits import CreditEntry
from service.core.endpoints import Endpoint
from service.core.events import Event
from service.core.pagination import PageRequest
from service.core.tasks import Task
from service.core.timeline import TimelineEntry
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
from service.store.queries import Queries


class QueryStore:
    """The ``Store`` methods that are one query each; subclasses say where queries run."""

    @property
    def _r(self) -> Queries:
        raise NotImplementedError

    @property
    def _scan(self) -> Queries:
        raise NotImplementedError

    def _writing(self, *, durable: bool) -> AbstractAsyncContextManager[Queries]:
        raise NotImplementedError

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Transaction]:
        async with self._writing(durable=durable) as tx:
            yield tx

    async def check_writable(self) -> None:
        """Open a write transaction and end it: proves the database takes writes."""
        async with self._writing(durable=True):
            pass

    async def ops_counts(self, now_ms: int) -> OpsCounts:
        return await self._scan.ops_counts(now_ms)

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
        async with self._writing(durable=False) as tx:  # a lease, safe to lose
            return await tx.claim_due_tasks(statuses, now_ms, lease_ms, limit)

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
        async with self._writing(durable=False) as tx:  # a lease, safe to lose
            return await tx.claim_due_deliveries(now_ms, lease_ms, limit)

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
        return await self._scan.recoverable_events(endpoint_id, since, until)

    async def list_events(
        self, account_id: str, where: EventFilter, page: PageRequest
    ) -> list[Event]:
        return await self._r.list_events(account_id, where, page)

    async def list_attempts_after(
        self, delivery_id: str, after_id: str | None, limit: int
    ) -> list[Attempt]:
        return await self._r.list_attempts_after(delivery_id, after_id, limit)

    async def get_asset(self, asset_id: str) -> Asset | None:
        return await self._r.get_asset(asset_id)

    async def blob_referenced(self, sha256: str) -> bool:
        return await self._r.blob_referenced(sha256)

    async def claim_due_mirrors(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedMirror]:
        async with self._writing(durable=False) as tx:  # a lease, safe to lose
            return await tx.claim_due_mirrors(now_ms, lease_ms, limit)

    async def count_mirrors(self) -> int:
        return await self._r.count_mirrors()
