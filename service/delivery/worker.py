"""The delivery worker: claim due deliveries under a lease, sign, POST, record, reschedule.

Every attempt is recorded with what came back; the delivery then moves on by the core's rules
(``core.delivery``): delivered, retried on the schedule, failed once the schedule is used up
(and still recoverable), or — on 410, or after failing continuously past the threshold — its
endpoint is disabled and the account's other endpoints hear ``endpoint.disabled``.

Sending happens outside any transaction; the outcome is written in one afterwards, and only if
this worker still holds the claim. A worker killed mid-send leaves a leased row that another
claims when the lease runs out: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from service.core.clock import Clock
from service.core.delivery import Verdict, judge, outbound, retry_delay_ms, should_disable
from service.core.endpoints import Endpoint, signing_secrets
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.delivery.sender import AttemptResult, Sender
from service.logs import get_logger
from service.metrics import Metrics
from service.outbox import record_event
from service.settings import DeliverySettings
from service.store.base import Attempt, ClaimedDelivery, Store, Transaction

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

    async def deliver_due(self) -> int:
        """Deliver what is due now; returns how many deliveries were claimed.

        Claims overlap with sending: once half of a batch is done, the next batch is claimed,
        so the slowest sends of one batch never leave the connections idle. It stops when a
        claim comes back short of a full batch (nothing more is due)."""
        batch = self.settings.batch_size
        everyone = asyncio.Semaphore(self.settings.concurrency)
        per_endpoint: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self.settings.per_endpoint_concurrency)
        )

        async def one(item: ClaimedDelivery, claimed_at: int) -> None:
            async with everyone, per_endpoint[item.endpoint.id]:
                try:
                    if await self._still_ours(item, claimed_at):
                        await self.attempt(item)
                except Exception:
                    log.exception("delivery.attempt_crashed", delivery_id=item.delivery.id)

        total = 0
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                claimed_at = self.clock()
                claimed = await self.store.claim_due_deliveries(
                    claimed_at, self.settings.lease_seconds * 1000, batch
                )
                total += len(claimed)
                running.update(asyncio.create_task(one(item, claimed_at)) for item in claimed)
                if len(claimed) < batch:
                    break
                while len(running) > batch // 2:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            if running:
                await asyncio.gather(*running)
        except asyncio.CancelledError:
            for task in running:  # a stopping worker's claims return when their leases run out
                task.cancel()
            raise
        return total

    async def _still_ours(self, item: ClaimedDelivery, claimed_at: int) -> bool:
        """Before sending an item that waited its turn past half its lease, renew the lease:
        if it ran out, another worker may have sent it already, and sending it again would be a
        needless duplicate. (Fresh claims skip this write.)"""
        lease_ms = self.settings.lease_seconds * 1000
        now = self.clock()
        if now - claimed_at < lease_ms // 2:
            return True
        async with self.store.transaction() as tx:
            renewed = await tx.renew_delivery_lease(item, now + lease_ms)
        if not renewed:
            log.info("delivery.lease_lost", delivery_id=item.delivery.id)
        return renewed

    async def attempt(self, item: ClaimedDelivery) -> None:
        endpoint = item.endpoint
        sent = endpoint.enabled and endpoint.deleted_at is None
        if not sent:
            result = AttemptResult(None, 0, "", "endpoint disabled")
            verdict = Verdict.FAILED
        else:
            out = outbound(
                item.event_id,
                item.payload,
                signing_secrets(endpoint, self.clock()),
                self.clock() // 1000,
            )
            result = await self.sender.send(endpoint.url, out)
            verdict = judge(result.status_code)
        if await self._record(item, result, verdict):
            # Counted once recorded, so the counter agrees with the attempts table.
            self.metrics.attempt(verdict, result.latency_ms if sent else None)

    async def _record(self, item: ClaimedDelivery, result: AttemptResult, verdict: Verdict) -> bool:
        """Write the attempt and the delivery's next state; False if the claim was lost."""
        now = self.clock()
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
        try:
            async with self.store.transaction() as tx:
                await tx.insert_attempt(
                    Attempt(
                        id=new_id("att", now), delivery_id=item.delivery.id, number=number,
                        status_code=result.status_code, latency_ms=result.latency_ms,
                        response_body=result.response_excerpt, error=result.error,
                        manual=item.delivery.manual, created_at=now,
                    )
                )  # fmt: skip
                finished = await tx.finish_delivery(
                    item, status=status, next_attempt_at=next_at, attempts=number,
                    last_status=result.status_code, last_error=result.error, now_ms=now,
                )  # fmt: skip
                if not finished:
                    raise _LostClaim
                await self._endpoint_health(tx, item.endpoint, verdict, now)
        except _LostClaim:
            log.warning("delivery.claim_lost", delivery_id=item.delivery.id)
            return False
        log.info(
            "delivery.attempt", delivery_id=item.delivery.id, event_id=item.event_id,
            endpoint_id=item.endpoint.id, attempt=number, status_code=result.status_code,
            outcome=status, latency_ms=result.latency_ms,
        )  # fmt: skip
        return True

    async def _endpoint_health(
        self, tx: Transaction, claimed: Endpoint, verdict: Verdict, now: int
    ) -> None:
        if verdict is Verdict.DELIVERED:  # the common case: one statement, no read
            await tx.clear_endpoint_failing(claimed.id, now)
            return
        endpoint = await tx.get_endpoint_by_id(claimed.id)
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


class _LostClaim(Exception):
    pass
