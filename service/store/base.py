"""The storage interface the use cases depend on.

It is deliberately narrow and speaks the core's language (tasks, entries, events), so that a
PostgreSQL backend is one more implementation of these protocols. Reads that a use case needs to
make a decision inside a transaction (a balance, an idempotency key) live on ``Reads`` so they can
run on the transaction's own connection.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from service.core.credits import CreditEntry
from service.core.events import Event
from service.core.pagination import PageRequest
from service.core.tasks import Task
from service.core.timeline import TimelineEntry


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: str
    prefix: str
    key_hash: str
    is_admin: bool
    created_at: int
    revoked_at: int | None = None


@dataclass(frozen=True)
class IdempotencyRecord:
    account_id: str
    key: str
    fingerprint: str
    task_id: str
    created_at: int


@dataclass(frozen=True)
class ModerationBlock:
    id: str
    account_id: str
    rule_id: str
    category: str
    prompt_sha256: str
    created_at: int


@dataclass(frozen=True)
class Claimed:
    """A task a worker holds under a lease: only the holder of ``claim_token`` may release it."""

    task: Task
    claim_token: str
    submit_attempts: int
    submitted_at: int | None


@dataclass(frozen=True)
class CallbackRecord:
    """One inbound provider callback, kept as it came (body and headers) with what it did."""

    id: str
    account_id: str
    task_id: str
    provider: str
    provider_task_id: str | None
    headers: dict[str, str]
    body: bytes
    verdict: str
    outcome: str
    detail: str
    received_at: int
    applied_at: int | None = None


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    model: str | None = None
    created_after: int | None = None


class Reads(Protocol):
    async def get_account(self, account_id: str) -> Account | None: ...
    async def balance(self, account_id: str) -> int: ...
    async def get_task(self, account_id: str, task_id: str) -> Task | None: ...
    async def find_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None: ...
    async def get_task_by_id(self, task_id: str) -> Task | None:
        """A task whatever its account: for callbacks (the token is the authority) and workers."""
        ...

    async def get_callback(self, account_id: str, callback_id: str) -> CallbackRecord | None: ...


class Transaction(Reads, Protocol):
    """Writes, all committed together or not at all."""

    async def insert_account(self, account: Account) -> None: ...
    async def insert_api_key(self, key: ApiKey) -> None: ...
    async def revoke_api_key(self, key_id: str, now_ms: int) -> bool: ...
    async def insert_credit_entry(self, entry: CreditEntry) -> None: ...
    async def insert_task(self, task: Task) -> None: ...
    async def insert_timeline(self, entry: TimelineEntry) -> None: ...
    async def insert_event(self, event: Event) -> None: ...
    async def put_idempotency(self, record: IdempotencyRecord) -> None: ...
    async def insert_moderation_block(self, block: ModerationBlock) -> None: ...
    async def update_task(self, task: Task) -> None:
        """Write a task's ledger state and refunded total (the row's identity never changes)."""
        ...

    async def schedule_task(self, task_id: str, next_check_at: int | None) -> None:
        """When a worker should next look at the task (``None``: never, it is terminal)."""
        ...

    async def release_task(
        self,
        claimed: Claimed,
        next_check_at: int | None,
        *,
        submit_attempts: int | None = None,
        submitted_at: int | None = None,
    ) -> bool:
        """Give a claimed task back with its next check; False if the claim was lost."""
        ...

    async def insert_callback(self, record: CallbackRecord) -> None: ...
    async def set_callback_outcome(
        self, callback_id: str, outcome: str, detail: str, applied_at: int | None
    ) -> None: ...


class Store(Reads, Protocol):
    async def open(self) -> list[str]: ...
    async def close(self) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...
    async def check_writable(self) -> None: ...
    async def find_api_key(self, prefix: str) -> ApiKey | None: ...
    async def list_tasks(
        self, account_id: str, where: TaskFilter, page: PageRequest
    ) -> list[Task]: ...
    async def list_timeline(self, task_id: str) -> list[TimelineEntry]: ...
    async def list_credit_entries(
        self, account_id: str, page: PageRequest
    ) -> list[CreditEntry]: ...
    async def list_moderation_blocks(self, account_id: str) -> list[ModerationBlock]: ...
    async def claim_due_tasks(
        self, statuses: tuple[str, ...], now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` tasks in ``statuses`` whose check is due and not leased."""
        ...

    async def list_callbacks(
        self, account_id: str, task_id: str | None, page: PageRequest
    ) -> list[CallbackRecord]: ...
