"""Use cases: the core's rules applied to the store, one transaction each. No HTTP here.

Each function takes exactly what it needs (the store, a settings slice, a clock) so the CLI, the
web routes and the workers share one implementation of every operation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from service.core import credits
from service.core.clock import Clock
from service.core.credits import CreditEntry
from service.core.events import task_event
from service.core.ids import is_id, new_id
from service.core.keys import issue_key
from service.core.ledger import Outcome, initial_state
from service.core.moderation import Ruleset
from service.core.pagination import PageRequest
from service.core.pricing import PricingTable
from service.core.tasks import (
    Task,
    TaskSpec,
    parse_task_request,
    request_fingerprint,
    upload_reference,
)
from service.core.timeline import EntryKind, TimelineEntry
from service.errors import (
    IdempotencyConflict,
    MalformedRequest,
    NotFound,
    PromptBlocked,
    TooManyTasks,
    ValidationFailed,
)
from service.moderation.decisions import kept_if_refused, record, screen_prompt
from service.moderation.external import ExternalModeration
from service.outbox import record_event
from service.settings import TaskSettings
from service.store.base import (
    Account,
    ApiKey,
    IdempotencyRecord,
    Reads,
    Store,
    TaskFilter,
)

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class TaskPolicy:
    """What ``submit_task`` needs from settings."""

    tasks: TaskSettings
    pricing: PricingTable
    moderation: Ruleset
    idempotency_ttl_ms: int
    #: the second moderation stage, when one is configured
    external_moderation: ExternalModeration | None = None
    #: taskhook's public base URL: its own links to uploads are recognised in ``images``
    public_base: str = ""


@dataclass(frozen=True)
class Submitted:
    task: Task
    #: True when an earlier request with the same Idempotency-Key made this task
    replayed: bool


async def submit_task(
    store: Store,
    policy: TaskPolicy,
    clock: Clock,
    *,
    account_id: str,
    key_id: str | None,
    body: Any,
    idempotency_key: str | None,
) -> Submitted:
    """Validate, screen, price and accept a task: task, charge, timeline entry, ``task.queued``
    event, idempotency record and the screening's decisions are written in one transaction, or
    nothing is but the decisions (see ``service.moderation.decisions``). ``key_id``: the API
    key submitting, kept on the decisions. A replay of an Idempotency-Key is answered before
    any check; the in-flight cap is checked inside the transaction (one writer at a time, so
    two submissions cannot both take the last place)."""
    now = clock()
    fingerprint = request_fingerprint(body)
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        earlier = await _idempotent_task(
            store, account_id, idempotency_key, fingerprint, policy, now
        )
        if earlier is not None:
            return Submitted(earlier, replayed=True)

    spec = parse_task_request(
        body,
        models=policy.pricing.models,
        providers=policy.tasks.providers,
        default_provider=policy.tasks.default_provider,
    )
    spec = await resolve_uploads(store, spec, account_id, policy.public_base)
    screening = await screen_prompt(
        spec.prompt,
        policy.moderation,
        policy.external_moderation,
        clock,
        account_id=account_id,
        key_id=key_id,
        now=now,
    )
    if not screening.allowed:
        await record(store, screening.decisions)
        raise PromptBlocked()
    cost = policy.pricing.price(spec.model, spec.type, spec.resolution, spec.num_images)

    async with kept_if_refused(store, screening.decisions), store.transaction() as tx:
        await tx.lock_account(account_id)
        await tx.insert_moderation_decisions(screening.decisions)
        if idempotency_key is not None:
            raced = await _idempotent_task(
                tx, account_id, idempotency_key, fingerprint, policy, now
            )
            if raced is not None:
                return Submitted(raced, replayed=True)
        await _check_in_flight(tx, account_id, policy.tasks.max_in_flight_per_account)
        task = Task(
            id=new_id("task", now),
            account_id=account_id,
            spec=spec,
            state=initial_state(now),
            cost_credits=cost,
            refunded_credits=0,
            created_at=now,
        )
        charge = credits.charge(
            new_id("cred", now), account_id, task.id, cost, await tx.balance(account_id), now
        )
        await tx.insert_task(task)
        await tx.insert_credit_entry(charge)
        await tx.insert_timeline(
            TimelineEntry(
                id=new_id("tl", now),
                task_id=task.id,
                kind=EntryKind.STATE_CHANGE,
                source="api",
                outcome=Outcome.APPLIED,
                status=task.state.status,
                progress=0,
                sequence=task.state.sequence,
                detail=f"accepted; charged {cost} credits",
                created_at=now,
            )
        )
        await record_event(tx, task_event(new_id("evt", now), task, "task.queued", now), now)
        if idempotency_key is not None:
            await tx.put_idempotency(
                IdempotencyRecord(account_id, idempotency_key, fingerprint, task.id, now)
            )
    return Submitted(task, replayed=False)


async def resolve_uploads(
    reads: Reads, spec: TaskSpec, account_id: str, public_base: str
) -> TaskSpec:
    """Name each upload in ``images`` by its id (a link to it expires; the id does not), once
    it is known to be the account's and still kept; 422 on ``images`` otherwise."""
    images = []
    for image in spec.images:
        upload_id = upload_reference(image, public_base)
        if upload_id is not None:
            asset = await reads.get_asset(upload_id)
            if asset is None or asset.account_id != account_id or asset.kind != "upload":
                raise ValidationFailed(f"No such upload: {upload_id}.", field="images")
            if asset.purged_at is not None:
                raise ValidationFailed(
                    f"Upload {upload_id} has expired; upload the image again.", field="images"
                )
            image = upload_id
        images.append(image)
    return replace(spec, images=tuple(images)) if spec.images else spec


async def _check_in_flight(reads: Reads, account_id: str, cap: int) -> None:
    """``[tasks] max_in_flight_per_account``: refuse a new task while the account has ``cap``
    unfinished ones (0: no cap)."""
    if cap and await reads.count_in_flight(account_id, cap) >= cap:
        raise TooManyTasks(cap)


def _check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise MalformedRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
            field="Idempotency-Key",
        )


async def _idempotent_task(
    reads: Reads, account_id: str, key: str, fingerprint: str, policy: TaskPolicy, now: int
) -> Task | None:
    record = await reads.find_idempotency(account_id, key)
    if record is None or record.created_at + policy.idempotency_ttl_ms < now:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different request body.",
            field="Idempotency-Key",
        )
    return await reads.get_task(account_id, record.task_id)


async def get_task(store: Store, account_id: str, task_id: str) -> Task:
    task = await store.get_task(account_id, task_id) if is_id(task_id, "task") else None
    if task is None:
        raise NotFound("No such task.", field="id")
    return task


async def list_tasks(
    store: Store, account_id: str, where: TaskFilter, page: PageRequest
) -> list[Task]:
    return await store.list_tasks(account_id, where, page)


async def task_timeline(store: Store, account_id: str, task_id: str) -> list[TimelineEntry]:
    task = await get_task(store, account_id, task_id)
    return await store.list_timeline(task.id)


async def get_account(store: Store, account_id: str) -> tuple[Account, int]:
    """The account and its balance (the sum of its entries)."""
    account = await store.get_account(account_id)
    if account is None:
        raise NotFound("No such account.")
    return account, await store.balance(account_id)


async def list_ledger(store: Store, account_id: str, page: PageRequest) -> list[CreditEntry]:
    return await store.list_credit_entries(account_id, page)


async def create_account(store: Store, clock: Clock, name: str, credits_: int = 0) -> Account:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("An account name must be 1 to 200 characters.", field="name")
    now = clock()
    account = Account(new_id("acct", now), name, now)
    async with store.transaction() as tx:
        await tx.insert_account(account)
        if credits_:
            await tx.insert_credit_entry(
                credits.grant(new_id("cred", now), account.id, credits_, now)
            )
    return account


async def grant_credits(store: Store, clock: Clock, account_id: str, amount: int) -> CreditEntry:
    now = clock()
    try:
        entry = credits.grant(new_id("cred", now), account_id, amount, now)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="amount") from None
    async with store.transaction() as tx:
        if await tx.get_account(account_id) is None:
            raise NotFound("No such account.", field="account_id")
        await tx.insert_credit_entry(entry)
    return entry


async def create_api_key(
    store: Store, clock: Clock, account_id: str, *, admin: bool = False
) -> tuple[ApiKey, str]:
    """A new key for ``account_id``: the stored record and the raw key, which is never kept."""
    now = clock()
    issued = issue_key()
    record = ApiKey(new_id("key", now), account_id, issued.prefix, issued.hash, admin, now)
    async with store.transaction() as tx:
        if await tx.get_account(account_id) is None:
            raise NotFound("No such account.", field="account_id")
        await tx.insert_api_key(record)
    return record, issued.raw


async def revoke_api_key(store: Store, clock: Clock, key_id: str) -> None:
    async with store.transaction() as tx:
        if not await tx.revoke_api_key(key_id, clock()):
            raise NotFound("No such active key.", field="key_id")
