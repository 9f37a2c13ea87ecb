"""Upstream use cases: submit tasks to providers, take their callbacks, poll the late ones.

All three paths end in ``apply_update``: the ledger decides, and the task, its timeline entry,
its refund and its event are written in the same transaction. Provider I/O happens outside
transactions (a slow provider must not hold the single writer); what it returned is applied
after, against the task as it is then — so a callback that raced the submitter, or a poll that
raced a callback, is simply ``stale`` or ``duplicate``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from service.core import credits, strictjson
from service.core.assets import MirrorJob
from service.core.clock import Clock
from service.core.events import task_event
from service.core.ids import is_id, new_id
from service.core.ledger import Change, Failure, Outcome, TaskStatus, Transition
from service.core.ledger import apply as ledger_apply
from service.core.mirroring import HELD_PROGRESS, Hold, hold_success
from service.core.retry import backoff_ms
from service.core.tasks import Linker, Task
from service.core.timeline import EntryKind, TimelineEntry
from service.core.tokens import CallbackTokens
from service.errors import StoreBusy, StoreError, StoreUnavailable
from service.logs import get_logger
from service.outbox import record_event
from service.providers.base import Provider, ProviderError, ProviderRejected, ProviderRetryable
from service.settings import UpstreamSettings
from service.store.base import Claimed, Keep, Store, Transaction

log = get_logger("taskhook.upstream")
T = TypeVar("T")
ACTIVE = (TaskStatus.SUBMITTED.value, TaskStatus.RUNNING.value)
TIMEOUT_FAILURE = Failure("provider_timeout", "The provider did not finish the task in time.")


@dataclass(frozen=True)
class Upstream:
    """What the upstream use cases need, wired once by the app."""

    store: Store
    providers: Mapping[str, Provider]
    tokens: CallbackTokens
    settings: UpstreamSettings
    public_base: str
    clock: Clock
    #: mints the signed links to kept results that task events carry
    link: Linker
    rand: Callable[[], float] = field(default=random.random)
    #: called after a commit that may have written deliveries (wakes the delivery loop)
    notify: Callable[[], None] = field(default=lambda: None)

    def callback_url(self, provider: str, task: Task) -> str:
        token = self.tokens.mint(provider, task.id, task.created_at)
        return f"{self.public_base}/callbacks/{provider}/{token}"

    def next_check(self, task: Task, now: int) -> int | None:
        """When to look at ``task`` again if nothing is heard: never once it is terminal."""
        if task.state.status.terminal:
            return None
        provider = self.providers.get(task.spec.provider)
        if provider is not None and provider.accepts_callbacks:
            return now + self.settings.callback_deadline_seconds * 1000
        return now + self.settings.poll_interval_seconds * 1000


@dataclass(frozen=True)
class Applied:
    """What ``apply_update`` did: the task as it is now, the ledger's verdict, and whether the
    task is now *held* — its provider succeeded and a mirror job keeps its results before it
    may succeed (nobody should poll it meanwhile: the job owns it)."""

    task: Task
    transition: Transition
    held: bool = False


async def apply_update(
    tx: Transaction,
    task: Task,
    change: Change,
    now: int,
    *,
    kind: EntryKind,
    source: str,
    link: Linker,
    next_check: Callable[[Task], int | None] | None = None,
    logged: bool = True,
) -> Applied:
    """Run ``change`` through the ledger and write everything it causes, in ``tx``;
    ``next_check``, if given, also reschedules an updated task (when to look at it next).
    A provider's success is first turned into a hold (``core.mirroring``): the task waits,
    ``running``, for the mirror loop. ``link`` mints result links for the events.
    ``logged=False``: the caller puts the update on a line of its own (a callback's access
    line), rather than a ``task.update`` line here."""
    if source != "mirror" and await _held(tx, task):
        # The provider already said success and its results are being kept: another word
        # from it now is a repeat of that (a success) or out of order (anything else).
        outcome = Outcome.DUPLICATE if change.status is TaskStatus.SUCCEEDED else Outcome.STALE
        reason = "the provider already reported success; its results are being kept"
        hold, transition = Hold(change), Transition(outcome, task.state, reason)
    else:
        hold = hold_success(task.state, change)
        transition = ledger_apply(task.state, hold.change, now)
    held = False
    if hold.sources and transition.outcome in (Outcome.APPLIED, Outcome.DUPLICATE):
        job = MirrorJob(task.id, task.account_id, hold.sources, 0, now, now)
        held = await tx.insert_mirror(job)
        if held:
            count = len(hold.sources)
            reason = f"the provider succeeded; keeping {count} result{'s' * (count != 1)}"
            transition = replace(transition, outcome=Outcome.APPLIED, reason=reason)
            next_check = _never
    if transition.outcome is Outcome.APPLIED:
        refunded = task.refunded_credits
        if transition.refund_due:
            entry = credits.refund(
                new_id("cred", now), task.account_id, task.id, task.cost_credits, refunded, now
            )
            if entry is not None:
                await tx.insert_credit_entry(entry)
                refunded += entry.delta
        task = replace(task, state=transition.state, refunded_credits=refunded)
        await tx.update_task(
            task, next_check_at=Keep.SCHEDULE if next_check is None else next_check(task)
        )
        if transition.event_type is not None:
            event = task_event(new_id("evt", now), task, transition.event_type, now, link)
            await record_event(tx, event, now)
    state = task.state
    await tx.insert_timeline(
        TimelineEntry(
            id=new_id("tl", now), task_id=task.id, kind=kind, source=source,
            outcome=transition.outcome, status=state.status, progress=state.progress,
            sequence=state.sequence, detail=transition.reason, created_at=now,
        )
    )  # fmt: skip
    if logged and transition.outcome is not Outcome.DUPLICATE:
        log.info(
            "task.update", task_id=task.id, source=source, outcome=str(transition.outcome),
            status=str(state.status), sequence=state.sequence,
        )  # fmt: skip
    return Applied(task, transition, held)


def _never(task: Task) -> None:
    return None


async def _held(tx: Transaction, task: Task) -> bool:
    """Whether ``task`` waits for the mirror loop. Only a running task at ``HELD_PROGRESS`` or
    more can be: any other is answered without a query (callbacks' hot path)."""
    state = task.state
    if state.status is not TaskStatus.RUNNING or state.progress < HELD_PROGRESS:
        return False
    return await tx.mirror_pending(task.id)


async def in_parallel(
    items: Iterable[T],
    work: Callable[[T], Awaitable[None]],
    limit: int,
    task_id: Callable[[T], str],
) -> None:
    """Run ``work`` on each item, at most ``limit`` at once; one failure does not stop the rest
    (it is logged with the item's ``task_id``). Items the database was away for are not
    logged one by one: the first such error is raised once all are done, and the worker loop
    defers the round (their claims' leases bring them round again)."""
    gate = asyncio.Semaphore(limit)
    away: list[StoreError] = []

    async def guarded(item: T) -> None:
        async with gate:
            try:
                await work(item)
            except (StoreUnavailable, StoreBusy) as exc:
                away.append(exc)
            except Exception:
                log.exception("worker.item_failed", task_id=task_id(item))

    await asyncio.gather(*(guarded(item) for item in items))
    if away:
        raise away[0]


def _task_id(claimed: Claimed) -> str:
    return claimed.task.id


# -- submission -------------------------------------------------------------------------------


async def submit_due(up: Upstream, limit: int, concurrency: int) -> int:
    """Claim queued tasks that are due and submit them; returns how many were claimed."""
    now = up.clock()
    lease_ms = up.settings.lease_seconds * 1000
    claimed = await up.store.claim_due_tasks(("queued",), now, lease_ms, limit)
    await in_parallel(claimed, lambda c: submit_claimed(up, c), concurrency, _task_id)
    return len(claimed)


async def submit_claimed(up: Upstream, claimed: Claimed) -> None:
    task = claimed.task
    attempts = claimed.submit_attempts + 1
    provider = up.providers.get(task.spec.provider)
    if provider is None:
        failure = Failure("provider_unavailable", f"Provider {task.spec.provider} is not enabled.")
        await _finish_submission(up, claimed, Change(TaskStatus.FAILED, failure=failure), attempts)
        return
    url = up.callback_url(provider.name, task) if provider.accepts_callbacks else None
    try:
        sent = task if provider.takes_files else with_upload_links(task, up.link)
        provider_task_id = await provider.submit(sent, url)
    except ProviderRejected as exc:
        change = Change(TaskStatus.FAILED, failure=exc.failure)
    except ProviderRetryable as exc:
        if attempts >= up.settings.submit_max_attempts:
            failure = Failure("provider_unavailable", f"Submission kept failing: {exc.message}")
            change = Change(TaskStatus.FAILED, failure=failure)
        else:
            await _retry_submission(up, claimed, attempts, exc)
            return
    else:
        change = Change(TaskStatus.SUBMITTED, provider_task_id=provider_task_id)
    await _finish_submission(up, claimed, change, attempts)


def with_upload_links(task: Task, link: Linker) -> Task:
    """The task as a provider sees it: each upload in ``images`` as a fresh signed link it can
    fetch (the task itself keeps the ids)."""
    if not any(is_id(image, "upl") for image in task.spec.images):
        return task
    images = tuple(link(i) if is_id(i, "upl") else i for i in task.spec.images)
    return replace(task, spec=replace(task.spec, images=images))


async def _retry_submission(
    up: Upstream, claimed: Claimed, attempts: int, exc: ProviderRetryable
) -> None:
    now = up.clock()
    delay = backoff_ms(
        attempts,
        up.settings.submit_backoff_base_ms,
        up.settings.submit_backoff_max_ms,
        up.rand(),
        exc.retry_after_s,
    )
    async with up.store.transaction() as tx:
        if await tx.release_task(claimed, now + delay, submit_attempts=attempts):
            await tx.insert_timeline(
                TimelineEntry(
                    id=new_id("tl", now), task_id=claimed.task.id, kind=EntryKind.STATE_CHANGE,
                    source="submitter", outcome=Outcome.REJECTED,
                    status=claimed.task.state.status, progress=claimed.task.state.progress,
                    sequence=claimed.task.state.sequence,
                    detail=f"attempt {attempts} failed ({exc.message}); retry in {delay} ms",
                    created_at=now,
                )
            )  # fmt: skip
    log.info("task.submit_retry", task_id=claimed.task.id, attempt=attempts, delay_ms=delay)


async def _finish_submission(up: Upstream, claimed: Claimed, change: Change, attempts: int) -> None:
    now = up.clock()
    try:
        async with up.store.transaction() as tx:
            current = await tx.get_task_by_id(claimed.task.id)
            if current is None:
                return
            applied = await apply_update(
                tx, current, change, now, kind=EntryKind.STATE_CHANGE, source="submitter",
                link=up.link,
            )  # fmt: skip
            task = applied.task
            released = await tx.release_task(
                claimed, up.next_check(task, now), submit_attempts=attempts, submitted_at=now
            )
            if not released:
                raise _LostClaim  # rolls the whole transaction back
        up.notify()
    except _LostClaim:
        # Our lease ran out and another worker owns the task: its result will count, not ours.
        log.warning("task.claim_lost", task_id=claimed.task.id)


class _LostClaim(Exception):
    pass


# -- reconciliation ---------------------------------------------------------------------------


async def reconcile_due(up: Upstream, limit: int, concurrency: int) -> int:
    """Poll submitted/running tasks that have been silent past their deadline."""
    now = up.clock()
    lease_ms = up.settings.lease_seconds * 1000
    claimed = await up.store.claim_due_tasks(ACTIVE, now, lease_ms, limit)
    await in_parallel(claimed, lambda c: poll_claimed(up, c), concurrency, _task_id)
    return len(claimed)


async def poll_claimed(up: Upstream, claimed: Claimed) -> None:
    task = claimed.task
    started = claimed.submitted_at or task.created_at
    provider = up.providers.get(task.spec.provider)
    change: Change | None = None
    kind, source = EntryKind.POLL, "poll"
    if up.clock() >= started + up.settings.give_up_seconds * 1000:
        change = Change(TaskStatus.FAILED, failure=TIMEOUT_FAILURE)
        kind, source = EntryKind.STATE_CHANGE, "reconciler"
    elif provider is not None and task.state.provider_task_id is not None:
        try:
            update = await provider.fetch_status(task.state.provider_task_id)
            change = update.change_for(task)
        except ProviderError as exc:
            log.info("task.poll_failed", task_id=task.id, error=exc.message)
    now = up.clock()
    async with up.store.transaction() as tx:
        current = await tx.get_task_by_id(task.id)
        if current is None:
            return
        held = False
        if change is not None:
            applied = await apply_update(
                tx, current, change, now, kind=kind, source=source, link=up.link
            )
            current, held = applied.task, applied.held
        poll_ms = up.settings.poll_interval_seconds * 1000
        done = held or current.state.status.terminal  # a held task is the mirror job's
        await tx.release_task(claimed, None if done else now + poll_ms)
    up.notify()


# -- helpers for the callback log ------------------------------------------------------------


def keep_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers worth keeping with a callback: all but credentials."""
    drop = {"authorization", "cookie", "proxy-authorization"}
    return {name.lower(): value for name, value in headers if name.lower() not in drop}


def body_preview(body: bytes) -> object:
    """A stored callback body for display: JSON when it is (strict) JSON, else text."""
    try:
        return strictjson.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
