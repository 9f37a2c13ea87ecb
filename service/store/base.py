"""The storage interface the use cases depend on.

It is deliberately narrow and speaks the core's language (tasks, entries, events), so that a
PostgreSQL backend is one more implementation of these protocols. Reads that a use case needs to
make a decision inside a transaction (a balance, an idempotency key) live on ``Reads`` so they can
run on the transaction's own connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from service.core.assets import Asset, ClaimedMirror, MirrorJob
from service.core.credits import CreditEntry
from service.core.endpoints import Endpoint
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


#: a screening decision's verdict, and the stage that made it
MODERATION_VERDICTS = ("allowed", "blocked")
MODERATION_STAGES = ("rules", "external")


@dataclass(frozen=True)
class ModerationDecision:
    """One stage's verdict on one submitted prompt, kept whatever it was: the audit trail. The
    prompt itself is kept only as its SHA-256."""

    id: str
    account_id: str
    #: the API key that submitted it (``None``: before keys were recorded)
    key_id: str | None
    verdict: str
    stage: str
    #: the rule that matched, or the external API's flagged category names (comma-separated)
    rule_id: str | None
    #: taskhook's category of a block (``None`` when allowed, or blocked for want of an answer)
    category: str | None
    #: why the external stage had no answer (``timeout``, ``http_503``…); ``None`` if it had
    error: str | None
    prompt_sha256: str
    created_at: int


@dataclass(frozen=True)
class DecisionFilter:
    """The decision log's filters; ``account_id`` ``None`` is every account (admin keys)."""

    account_id: str | None
    verdict: str | None = None
    category: str | None = None


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


class Keep(Enum):
    """``Transaction.update_task``'s default for ``next_check_at``: leave it as it is."""

    SCHEDULE = "keep"


#: a delivery is ``pending`` until it succeeds (``delivered``) or is given up on (``failed``)
DELIVERY_STATUSES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Delivery:
    """One event to one endpoint; its attempts are kept separately."""

    id: str
    event_id: str
    endpoint_id: str
    account_id: str
    status: str
    attempts: int
    #: when the worker should try next (``None`` once it is no longer pending)
    next_attempt_at: int | None
    #: True for a replay or recovery someone asked for
    manual: bool
    last_status: int | None
    last_error: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Attempt:
    """One HTTP try of a delivery: what came back (or why nothing did)."""

    id: str
    delivery_id: str
    number: int
    status_code: int | None
    latency_ms: int
    #: the first bytes of the response body, as text
    response_body: str
    error: str | None
    manual: bool
    created_at: int


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a worker holds under a lease, with everything needed to send it: the exact
    payload text to sign and the endpoint as it was when claimed. Only the holder of
    ``claim_token`` may finish it."""

    delivery: Delivery
    claim_token: str
    event_id: str
    event_type: str
    payload: str
    endpoint: Endpoint


@dataclass(frozen=True)
class DeliveryOutcome:
    """What an attempt made of the delivery it was claimed for: the delivery's next state."""

    claimed: ClaimedDelivery
    status: str
    next_attempt_at: int | None
    attempts: int
    last_status: int | None
    last_error: str | None
    updated_at: int


@dataclass(frozen=True)
class OpsCounts:
    """What ``/metrics`` reads from the database at scrape time (times in unix ms)."""

    #: rows per status / outcome; a value with no rows is absent
    tasks: dict[str, int]
    callbacks: dict[str, int]
    deliveries: dict[str, int]
    #: pending deliveries a worker would claim now: due, and not under a live lease
    queue_due: int
    #: pending deliveries under a live lease: being sent right now
    queue_claimed: int
    #: ``created_at`` of the oldest pending delivery (``None``: nothing pending)
    oldest_pending_at: int | None
    #: ``next_attempt_at`` of the longest-waiting due, unclaimed delivery
    oldest_due_at: int | None
    #: delivery attempts ever recorded, by outcome (every process's: a table, not a counter)
    attempts: dict[str, int] = field(default_factory=dict)
    #: tasks whose provider succeeded, waiting for their results to be kept
    mirror_jobs: int = 0


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    model: str | None = None
    created_after: int | None = None


@dataclass(frozen=True)
class EventFilter:
    """The event log's filters; ``after`` and ``before`` (ms) are exclusive bounds on
    ``created_at``."""

    type: str | None = None
    task_id: str | None = None
    after: int | None = None
    before: int | None = None


class Reads(Protocol):
    async def get_account(self, account_id: str) -> Account | None: ...
    async def balance(self, account_id: str) -> int: ...
    async def get_task(self, account_id: str, task_id: str) -> Task | None: ...
    async def find_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None: ...
    async def get_task_by_id(self, task_id: str) -> Task | None:
        """A task whatever its account: for callbacks (the token is the authority) and workers."""
        ...

    async def count_in_flight(self, account_id: str, up_to: int) -> int:
        """How many of the account's tasks are queued, submitted or running, counting no
        further than ``up_to`` (the cap being checked): a bounded read of an index."""
        ...

    async def get_callback(self, account_id: str, callback_id: str) -> CallbackRecord | None: ...
    async def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        """The account's endpoint; a deleted one is as good as never created."""
        ...

    async def get_endpoint_by_id(self, endpoint_id: str) -> Endpoint | None:
        """An endpoint whatever its account, deleted ones included: for the delivery worker."""
        ...

    async def endpoints_for_account(self, account_id: str) -> list[Endpoint]:
        """The account's enabled, undeleted endpoints: the candidates for fan-out."""
        ...

    async def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None: ...
    async def get_event(self, account_id: str, event_id: str) -> Event | None: ...
    async def get_event_by_id(self, event_id: str) -> Event | None:
        """An event whatever its account: for the operator's replay command."""
        ...

    async def get_callback_by_id(self, callback_id: str) -> CallbackRecord | None:
        """A kept callback whatever its account: for the operator's replay command."""
        ...

    async def recoverable_events(self, endpoint_id: str, since: int, until: int) -> list[Event]:
        """Events with a failed delivery to the endpoint created in ``[since, until)``, oldest
        first, once each, except those already delivered there or pending to it since, and
        those whose payload retention has purged."""
        ...

    async def get_asset(self, asset_id: str) -> Asset | None:
        """An asset whatever its account: its signed link is the credential."""
        ...

    async def blob_referenced(self, sha256: str) -> bool:
        """True while a live (unpurged) asset keeps the blob ``sha256``."""
        ...


class Transaction(Reads, Protocol):
    """Writes, all committed together or not at all."""

    async def lock_account(self, account_id: str) -> None:
        """Until the transaction ends, other transactions that lock the account wait: a
        submit reads the balance and the idempotency keys before it writes, and two at once
        (two ``web`` processes on PostgreSQL) must not both act on what they read."""
        ...

    async def insert_account(self, account: Account) -> None: ...
    async def insert_api_key(self, key: ApiKey) -> None: ...
    async def revoke_api_key(self, key_id: str, now_ms: int) -> bool: ...
    async def insert_credit_entry(self, entry: CreditEntry) -> None: ...
    async def insert_task(self, task: Task) -> None: ...
    async def insert_timeline(self, entry: TimelineEntry) -> None: ...
    async def insert_event(self, event: Event) -> None: ...
    async def put_idempotency(self, record: IdempotencyRecord) -> None: ...
    async def insert_moderation_decisions(
        self, decisions: Sequence[ModerationDecision]
    ) -> None: ...
    async def update_task(
        self, task: Task, *, next_check_at: int | Keep | None = Keep.SCHEDULE
    ) -> None:
        """Write a task's ledger state and refunded total (the row's identity never changes),
        and — when given — when a worker should next look at it (``None``: never, it is
        terminal): one statement, where a second would touch the row and its index again."""
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

    async def purge_event_payloads(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        """Retention: empty the payload of up to ``limit`` events created before ``cutoff_ms``
        with no pending delivery, oldest first; returns how many."""
        ...

    async def purge_callback_bodies(self, cutoff_ms: int, now_ms: int, limit: int) -> int:
        """Retention: empty the body and headers of up to ``limit`` callbacks received before
        ``cutoff_ms`` (not ones still ``pending``), oldest first; returns how many."""
        ...

    async def claim_job(self, name: str, now_ms: int, every_ms: int, owner: str) -> bool:
        """A periodic job's turn across every process sharing the database: True (and the
        job is this caller's to run now) if it last began ``every_ms`` or more ago, or never."""
        ...

    async def insert_endpoint(self, endpoint: Endpoint) -> None: ...
    async def update_endpoint(self, endpoint: Endpoint) -> bool:
        """Write an endpoint's mutable fields; False if it is gone (deleted)."""
        ...

    async def clear_endpoint_failing(self, endpoint_id: str, now_ms: int) -> None:
        """A delivery succeeded: the endpoint is no longer failing (a no-op if it was not)."""
        ...

    async def delete_endpoint(self, account_id: str, endpoint_id: str, now_ms: int) -> bool:
        """Soft delete (the row stays for its deliveries' history); False if there was none."""
        ...

    async def insert_deliveries(self, deliveries: list[Delivery]) -> None: ...
    async def fail_pending_deliveries(self, endpoint_id: str, error: str, now_ms: int) -> int:
        """Give up every pending delivery to the endpoint; returns how many there were."""
        ...

    async def renew_delivery_lease(self, claimed: ClaimedDelivery, lease_until: int) -> bool:
        """Extend a claim still held; False if it ran out and another worker took it."""
        ...

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Record claimed deliveries' outcomes and drop their leases; how many were written.
        One whose claim was lost (the lease ran out and another worker took it) is left as
        it is."""
        ...

    async def insert_attempts(self, attempts: Sequence[Attempt]) -> None: ...
    async def insert_asset(self, asset: Asset) -> None: ...
    async def purge_assets(self, cutoff_ms: int, now_ms: int, limit: int) -> tuple[int, list[str]]:
        """Retention: mark up to ``limit`` assets created before ``cutoff_ms`` purged, oldest
        first; returns how many, and the blob keys no live asset references any more."""
        ...

    async def insert_mirror(self, job: MirrorJob) -> bool:
        """Queue a task's results for keeping; False if the task already has a job."""
        ...

    async def claim_due_mirrors(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedMirror]: ...
    async def retry_mirror(
        self, claimed: ClaimedMirror, next_attempt_at: int, attempts: int, error: str
    ) -> bool:
        """Give a claimed job back to try again at ``next_attempt_at``; False if lost."""
        ...

    async def finish_mirror(self, claimed: ClaimedMirror) -> bool:
        """Delete a settled job; False if the claim was lost (the transaction must not
        commit what it did with the job)."""
        ...

    async def mirror_pending(self, task_id: str) -> bool:
        """True while the task has a mirror job (its provider succeeded; results being kept)."""
        ...


class Store(Reads, Protocol):
    async def open(self) -> list[str]: ...
    async def close(self) -> None: ...
    def transaction(self, *, durable: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction, committed before the block is left. ``durable=False`` is
        for writes that are safe to lose in a power cut (a lease, a delivery attempt: the
        work is done again, under the same ids), which may then skip the commit's fsync."""
        ...

    async def check_writable(self) -> None: ...
    async def reencrypt_secrets(self) -> int:
        """Move every stored secret not under the current key to it; how many moved."""
        ...

    async def ops_counts(self, now_ms: int) -> OpsCounts:
        """Counts and queue depths for ``/metrics``, read through indexes."""
        ...

    async def find_api_key(self, prefix: str) -> ApiKey | None: ...
    async def list_tasks(
        self, account_id: str, where: TaskFilter, page: PageRequest
    ) -> list[Task]: ...
    async def list_timeline(self, task_id: str) -> list[TimelineEntry]: ...
    async def list_credit_entries(
        self, account_id: str, page: PageRequest
    ) -> list[CreditEntry]: ...
    async def list_moderation_decisions(
        self, where: DecisionFilter, page: PageRequest
    ) -> list[ModerationDecision]:
        """Newest first, ``limit + 1`` of them so the caller can tell whether more follow."""
        ...

    async def claim_due_tasks(
        self, statuses: tuple[str, ...], now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` tasks in ``statuses`` whose check is due and not leased."""
        ...

    async def list_callbacks(
        self, account_id: str, task_id: str | None, page: PageRequest
    ) -> list[CallbackRecord]: ...
    async def list_endpoints(self, account_id: str, page: PageRequest) -> list[Endpoint]: ...
    async def claim_due_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` pending deliveries that are due and not leased, oldest due
        first, each with its event payload and endpoint."""
        ...

    async def list_deliveries_for_event(
        self, event_id: str, page: PageRequest
    ) -> list[Delivery]: ...
    async def list_deliveries_for_endpoint(
        self, endpoint_id: str, status: str | None, page: PageRequest
    ) -> list[Delivery]: ...
    async def list_attempts(self, delivery_id: str) -> list[Attempt]: ...
    async def list_events(
        self, account_id: str, where: EventFilter, page: PageRequest
    ) -> list[Event]: ...
    async def list_attempts_after(
        self, delivery_id: str, after_id: str | None, limit: int
    ) -> list[Attempt]:
        """Up to ``limit + 1`` attempts in the order made, after the attempt ``after_id``."""
        ...

    async def claim_due_mirrors(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedMirror]:
        """Lease up to ``limit`` mirror jobs that are due and not leased, oldest due first."""
        ...

    async def count_mirrors(self) -> int:
        """Mirror jobs waiting (the mirror queue's depth)."""
        ...
