"""The delivery worker: claim due deliveries under a lease, sign, POST, record, reschedule.

Every attempt is recorded with what came back; the delivery then moves on by the core's rules
(``core.delivery``): delivered, retried on the schedule, failed once the schedule is used up
(and still recoverable), or — on 410, or after failing continuously past the threshold — its
endpoint is disabled and the account's other endpoints hear ``endpoint.disabled``.

Sending happens outside any transaction (``dispatch``: lanes, one per request in flight); the
outcome is written in one afterwards, and only if this worker still holds the claim. Outcomes
that finish while the previous ones are being written share the next transaction. A worker
killed mid-send leaves a leased row that another claims when the lease runs out: at least once,
never lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from service.core.clock import Clock
from service.core.delivery import Verdict, judge, outbound, retry_delay_ms, should_disable
from service.core.endpoints import Endpoint, signing_secrets
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.delivery.dispatch import Lanes
from service.delivery.sender import AttemptResult, Sender
from service.logs import get_logger
from service.metrics import Metrics
from service.outbox import record_event
from service.settings import DeliverySettings
from service.store.base import Attempt, ClaimedDelivery, DeliveryOutcome, Store, Transaction

log = get_logger("taskhook.delivery")


@dataclass
class DeliveryWorker:
    store: Store
    sender: Sender
    settings: DeliverySettings
    clock: Clock
    rand: Callable[[], float] = field(default=random.random)
    #: where recorded attempts are counted (the app's registry; a private one if not given)
    metrics: Metrics = field(default_factory=Metrics)

    async def deliver_due(self, woken: asyncio.Event | None = None) -> int:
        """Deliver what is due now; returns how many deliveries were claimed.

        Claims overlap with sending: once half of a batch is recorded, the next batch is
        claimed, so the slowest sends of one batch never leave the connections idle (sending
        and recording: ``dispatch``). A claim that comes back short of a full batch means
        nothing more is due: the round ends once what it claimed is recorded — unless
        ``woken`` is set meanwhile (new deliveries were committed), which claims again at once.
        Waiting for the round's last attempts to be written (a commit, perhaps behind another
        process's write lock) would otherwise hold the news back by a whole round."""
        batch = self.settings.batch_size
        lanes: Lanes[_Sent] = Lanes(
            self._attempt,
            self._record,
            concurrency=self.settings.concurrency,
            per_endpoint=self.settings.per_endpoint_concurrency,
        )
        total = 0
        try:
            while True:
                claimed_at = self.clock()
                claimed = await self.store.claim_due_deliveries(
                    claimed_at, self.settings.lease_seconds * 1000, batch
                )
                total += len(claimed)
                lanes.add(claimed, claimed_at)
                if len(claimed) < batch:
                    if not await lanes.until_at_most(0, woken):
                        break
                    continue
                await lanes.until_at_most(batch // 2)
        except asyncio.CancelledError:
            await lanes.close()  # a stopping worker's claims return when their leases run out
            raise
        if lanes.away is not None:  # the database went away mid-round: the loop defers
            raise lanes.away
        return total

    async def _attempt(self, item: ClaimedDelivery, claimed_at: int) -> _Sent | None:
        """Send one claimed delivery (its endpoint's slot held); ``None`` if the claim was
        lost while it waited its turn."""
        if not await self._still_ours(item, claimed_at):
            return None
        return await self._send(item)

    async def _still_ours(self, item: ClaimedDelivery, claimed_at: int) -> bool:
        """Before sending an item that waited its turn past half its lease, renew the lease:
        if it ran out, another worker may have sent it already, and sending it again would be a
        needless duplicate. (Fresh claims skip this write.)"""
        lease_ms = self.settings.lease_seconds * 1000
        now = self.clock()
        if now - claimed_at < lease_ms // 2:
            return True
        async with self.store.transaction(durable=False) as tx:
            renewed = await tx.renew_delivery_lease(item, now + lease_ms)
        if not renewed:
            log.info("delivery.lease_lost", delivery_id=item.delivery.id)
        return renewed

    async def _send(self, item: ClaimedDelivery) -> _Sent:
        endpoint = item.endpoint
        if not (endpoint.enabled and endpoint.deleted_at is None):
            return _Sent(
                item, AttemptResult(None, 0, "", "endpoint disabled"), Verdict.FAILED, False
            )
        out = outbound(
            item.event_id,
            item.payload,
            signing_secrets(endpoint, self.clock()),
            self.clock() // 1000,
        )
        result = await self.sender.send(endpoint.url, out)
        return _Sent(item, result, judge(result.status_code), True)

    async def _record(self, batch: list[_Sent]) -> list[bool]:
        """Write each attempt and its delivery's next state, all in one transaction (one
        group member, one savepoint, one wait for the commit, whatever the batch size); which
        of them were written (``False``: the claim was lost). Should the batch fail as a
        whole, each is tried alone, so one bad row cannot hold back the rest."""
        try:
            recorded = await self._write(batch)
        except Exception:
            if len(batch) == 1:
                raise
            recorded = []
            for sent in batch:
                try:
                    recorded += await self._write([sent])
                except Exception:
                    log.exception("delivery.attempt_crashed", delivery_id=sent.item.delivery.id)
                    recorded.append(False)
        for sent, ok in zip(batch, recorded, strict=True):
            if ok:  # timed once recorded, as the attempts table counts it
                self.metrics.observe_latency(sent.result.latency_ms if sent.sent else None)
        return recorded

    async def _write(self, batch: list[_Sent]) -> list[bool]:
        now = self.clock()
        outcomes = [self._outcome(sent, now) for sent in batch]
        # An attempt lost in a power cut is made again, under the same webhook-id: no fsync
        # needed. A failure may disable an endpoint and announce it (a new event), which is not.
        durable = any(sent.verdict is not Verdict.DELIVERED for sent in batch)
        async with self.store.transaction(durable=durable) as tx:
            # The claims first: a lost claim writes nothing, so there is nothing to undo.
            finished = await tx.finish_deliveries(outcomes) == len(batch)
            if not finished and len(batch) > 1:
                raise _ClaimLost  # which one is not known: undone here, each written alone
            if finished:
                await tx.insert_attempts(list(map(_attempt_row, batch, outcomes)))
                healthy: set[str] = set()  # endpoints already cleared in this transaction
                for sent in batch:
                    await self._endpoint_health(tx, sent, now, healthy)
        if not finished:
            log.warning("delivery.claim_lost", delivery_id=batch[0].item.delivery.id)
            return [False]
        for sent, outcome in zip(batch, outcomes, strict=True):
            # Every attempt is on record (the attempts table, the metrics); in the log, only
            # those that did not deliver stand out at info, not thousands of successes a second.
            item, result = sent.item, sent.result
            emit = log.debug if outcome.status == "delivered" else log.info
            emit(
                "delivery.attempt", delivery_id=item.delivery.id, event_id=item.event_id,
                endpoint_id=item.endpoint.id, attempt=outcome.attempts,
                status_code=result.status_code, outcome=outcome.status,
                latency_ms=result.latency_ms,
            )  # fmt: skip
        return [True] * len(batch)

    def _outcome(self, sent: _Sent, now: int) -> DeliveryOutcome:
        """The delivery's next state after this attempt, by the core's rules."""
        item, result, verdict = sent.item, sent.result, sent.verdict
        number = item.delivery.attempts + 1
        status, next_at = "failed", None
        if verdict is Verdict.DELIVERED:
            status = "delivered"
        elif verdict is Verdict.FAILED and item.endpoint.enabled:
            delay = retry_delay_ms(
                number,
                self.settings.schedule_seconds,
                self.settings.jitter_fraction,
                self.rand(),
                result.retry_after_s,
            )
            if delay is not None:
                status, next_at = "pending", now + delay
        return DeliveryOutcome(
            item, status=status, next_attempt_at=next_at, attempts=number,
            last_status=result.status_code, last_error=result.error, updated_at=now,
        )  # fmt: skip

    async def _endpoint_health(
        self, tx: Transaction, sent: _Sent, now: int, healthy: set[str]
    ) -> None:
        """Clear, mark or disable the attempt's endpoint; ``healthy`` holds those already
        cleared in this transaction, which a later success need not clear again."""
        endpoint_id, verdict = sent.item.endpoint.id, sent.verdict
        if verdict is Verdict.DELIVERED:  # the common case: one statement, no read
            if endpoint_id not in healthy:
                await tx.clear_endpoint_failing(endpoint_id, now)
                healthy.add(endpoint_id)
            return
        healthy.discard(endpoint_id)
        endpoint = await tx.get_endpoint_by_id(endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return
        if verdict is Verdict.GONE:
            await self._disable(tx, endpoint, "The endpoint answered 410 Gone.", now)
            return
        failing_since = endpoint.failing_since or now
        threshold = self.settings.disable_after_failing_seconds
        if should_disable(failing_since, now, threshold):
            await self._disable(tx, endpoint, f"Failing continuously for {threshold} s.", now)
        elif endpoint.failing_since is None:
            await tx.update_endpoint(replace(endpoint, failing_since=now, updated_at=now))

    async def _disable(self, tx: Transaction, endpoint: Endpoint, reason: str, now: int) -> None:
        await tx.update_endpoint(
            replace(endpoint, enabled=False, disabled_reason=reason, updated_at=now)
        )
        await tx.fail_pending_deliveries(endpoint.id, "endpoint disabled", now)
        data = {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason}
        event = Event(
            id=new_id("evt", now), account_id=endpoint.account_id, type="endpoint.disabled",
            task_id=None, payload=envelope("endpoint.disabled", data, now), created_at=now,
        )  # fmt: skip
        await record_event(tx, event, now, exclude_endpoint=endpoint.id)
        log.warning("endpoint.disabled", endpoint_id=endpoint.id, reason=reason)


def _attempt_row(sent: _Sent, outcome: DeliveryOutcome) -> Attempt:
    """The attempt's row: its number and time are the outcome's."""
    item, result, now = sent.item, sent.result, outcome.updated_at
    return Attempt(
        id=new_id("att", now), delivery_id=item.delivery.id, number=outcome.attempts,
        status_code=result.status_code, latency_ms=result.latency_ms,
        response_body=result.response_excerpt, error=result.error,
        manual=item.delivery.manual, created_at=now,
    )  # fmt: skip


class _ClaimLost(Exception):
    """A claim in a batch was lost: the batch is undone and each attempt written alone, where
    the lost one writes nothing."""


@dataclass(frozen=True)
class _Sent:
    """One attempt's outcome, waiting to be recorded."""

    item: ClaimedDelivery
    result: AttemptResult
    verdict: Verdict
    sent: bool  # False: nothing went out (the endpoint was disabled or deleted)
