"""Inbound callbacks: verify, keep, apply — and replay what was kept.

Order matters. The token says which task (a forged, altered or expired one stops everything:
401, nothing stored). The provider's own signature says the body is authentic (a bad one is
kept as ``rejected`` for inspection, then 401). Then the raw callback and its effect on the
ledger are written in one transaction before the 2xx, so an acknowledged callback is never lost
and never applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import NoReturn

import structlog

from service.core.ids import is_id, new_id
from service.core.ledger import Outcome
from service.core.signing import SignatureInvalid
from service.core.tasks import Task
from service.core.timeline import EntryKind
from service.core.tokens import TokenInvalid
from service.errors import Conflict, NotFound, ValidationFailed
from service.logs import get_logger
from service.providers.base import CallbackInvalid, Provider, ProviderError, ProviderUpdate
from service.store.base import CallbackRecord
from service.upstream import Upstream, apply_update, keep_headers

log = get_logger("taskhook.callbacks")


async def receive_callback(
    up: Upstream, provider_name: str, token: str, headers: Iterable[tuple[str, str]], body: bytes
) -> CallbackRecord:
    provider = up.providers.get(provider_name)
    if provider is None:
        raise NotFound("No such provider.", field="provider")
    task_id = up.tokens.read(provider_name, token)
    kept = keep_headers(headers)
    now = up.clock()
    try:
        provider.verify_callback(kept, body, now)
        update = provider.parse_callback(body)
    except (SignatureInvalid, CallbackInvalid) as exc:
        async with up.store.transaction() as tx:
            task = _ours(await tx.get_task_by_id(task_id), provider_name)
            await tx.insert_callback(_rejected(task, provider_name, kept, body, exc.message, now))
        log.warning("callback.rejected", task_id=task_id, detail=exc.message)
        raise
    record = CallbackRecord(
        id=new_id("cb", now), account_id="", task_id=task_id, provider=provider_name,
        provider_task_id=update.provider_task_id, headers=kept, body=body, verdict="verified",
        outcome=Outcome.APPLIED.value, detail="", received_at=now,
    )  # fmt: skip
    if provider.confirms_callbacks:
        # Look before asking the provider about the task: a callback naming another task is
        # refused without a call upstream. (Otherwise the transaction below checks.)
        task = _ours(await up.store.get_task_by_id(task_id), provider_name)
        if _names_another(task, update):
            await _refuse_another(up, record, task)
        record = replace(record, account_id=task.account_id)
    return await _apply_callback(up, provider, record, update, insert=True)


def _ours(task: Task | None, provider: str) -> Task:
    """The task a valid token named (tasks are never deleted, and a token is salted per
    provider: anything else is a forgery that got past the signature check)."""
    if task is None or task.spec.provider != provider:
        raise TokenInvalid("The callback token is not valid.")
    return task


def _names_another(task: Task, update: ProviderUpdate) -> bool:
    known = task.state.provider_task_id
    return known is not None and update.provider_task_id != known


async def _refuse_another(up: Upstream, record: CallbackRecord, task: Task) -> NoReturn:
    detail = "names another task"
    async with up.store.transaction() as tx:
        await tx.insert_callback(
            _rejected(
                task, record.provider, record.headers, record.body, detail, record.received_at
            )
        )
    log.warning("callback.rejected", task_id=task.id, detail=detail)
    raise TokenInvalid("The callback token belongs to another task.")


async def replay_callback(up: Upstream, account_id: str, callback_id: str) -> CallbackRecord:
    """Apply a kept callback again, through the same ledger path (a no-op if it already was)."""
    record = (
        await up.store.get_callback(account_id, callback_id) if is_id(callback_id, "cb") else None
    )
    if record is None:
        raise NotFound("No such callback.", field="id")
    if record.verdict != "verified":
        raise ValidationFailed(
            "This callback failed verification when it arrived; it cannot be replayed.",
            code="callback_rejected",
        )
    if not record.body:
        raise Conflict(
            "The retention policy has removed this callback's body; it cannot be replayed.",
            code="callback_purged",
        )
    provider = up.providers.get(record.provider)
    if provider is None:
        raise ValidationFailed(f"Provider {record.provider} is not enabled.", field="provider")
    update = provider.parse_callback(record.body)
    return await _apply_callback(up, provider, record, update, insert=False)


async def _apply_callback(
    up: Upstream,
    provider: Provider,
    record: CallbackRecord,
    update: ProviderUpdate,
    *,
    insert: bool,
) -> CallbackRecord:
    source = "callback" if insert else "replay"
    if provider.confirms_callbacks and update.status.terminal:
        # The signature does not cover the body: believe an outcome (a success, or a failure
        # that would refund) only once the provider's own status endpoint says so.
        try:
            update = await provider.fetch_status(update.provider_task_id)
        except ProviderError as exc:
            return await _keep_pending(up, record, f"confirmation failed: {exc.message}", insert)
    now = up.clock()
    async with up.store.transaction() as tx:
        task = _ours(await tx.get_task_by_id(record.task_id), record.provider)
        refused = insert and _names_another(task, update)
        if not refused:
            record = replace(record, account_id=task.account_id)
            applied = await apply_update(
                tx, task, update.change_for(task), now, kind=EntryKind.CALLBACK, source=source,
                link=up.link, next_check=lambda moved: up.next_check(moved, now), logged=False,
            )  # fmt: skip
            task, transition = applied.task, applied.transition
            outcome = transition.outcome.value
            applied_at = now if transition.outcome is Outcome.APPLIED else record.applied_at
            done = replace(record, outcome=outcome, detail=transition.reason, applied_at=applied_at)
            if insert:
                await tx.insert_callback(done)
            elif transition.outcome is Outcome.APPLIED or record.outcome == "pending":
                await tx.set_callback_outcome(done.id, outcome, done.detail, applied_at)
    if refused:
        await _refuse_another(up, record, task)
    if transition.outcome is Outcome.APPLIED:
        up.notify()
    # On the request's own log line (the access line) rather than lines of their own: one line
    # per callback says what came in and what it did to the task.
    structlog.contextvars.bind_contextvars(
        callback_id=done.id, task_id=task.id, outcome=outcome,
        task_status=str(task.state.status), sequence=task.state.sequence,
    )  # fmt: skip
    return done if insert or transition.outcome is Outcome.APPLIED else record


async def _keep_pending(
    up: Upstream, record: CallbackRecord, detail: str, insert: bool
) -> CallbackRecord:
    pending = replace(record, outcome="pending", detail=detail)
    async with up.store.transaction() as tx:
        if insert:
            await tx.insert_callback(pending)
        else:
            await tx.set_callback_outcome(record.id, "pending", detail, record.applied_at)
    log.warning("callback.pending", callback_id=record.id, task_id=record.task_id, detail=detail)
    return pending


def _rejected(
    task: Task, provider: str, headers: dict[str, str], body: bytes, detail: str, now: int
) -> CallbackRecord:
    """What is kept of a callback that failed verification, for inspection."""
    return CallbackRecord(
        id=new_id("cb", now), account_id=task.account_id, task_id=task.id, provider=provider,
        provider_task_id=None, headers=headers, body=body, verdict="rejected",
        outcome=Outcome.REJECTED.value, detail=detail, received_at=now,
    )  # fmt: skip
