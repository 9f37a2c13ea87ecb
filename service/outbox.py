"""The transactional outbox: an event and the deliveries it owes are written together.

Writing the deliveries in the same transaction as the event (and as the change that caused it)
is what makes delivery "never lost across a crash": there is no moment at which the event is
committed but nobody is due to receive it. The delivery worker only ever reads pending rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.core.endpoints import Endpoint, recipients
from service.core.events import Event
from service.core.ids import new_id
from service.store.base import Delivery, Transaction


async def record_event(
    tx: Transaction, event: Event, now_ms: int, *, exclude_endpoint: str | None = None
) -> list[Delivery]:
    """Insert ``event`` and one pending delivery, due now, per enabled endpoint of its account
    that subscribes to its type. ``exclude_endpoint`` keeps an ``endpoint.disabled`` event away
    from the endpoint it is about."""
    await tx.insert_event(event)
    endpoints = await tx.endpoints_for_account(event.account_id)
    targets = recipients(endpoints, event.type, exclude=exclude_endpoint)
    return await deliver(tx, event, targets, now_ms)


async def deliver(
    tx: Transaction,
    event: Event,
    endpoints: Iterable[Endpoint],
    now_ms: int,
    *,
    manual: bool = False,
) -> list[Delivery]:
    """One new pending delivery of an already written ``event`` to each of ``endpoints``: the
    fan-out above, a ping to one endpoint, or a replay (``manual``)."""
    deliveries = [
        Delivery(
            id=new_id("dlv", now_ms),
            event_id=event.id,
            endpoint_id=endpoint.id,
            account_id=event.account_id,
            status="pending",
            attempts=0,
            next_attempt_at=now_ms,
            manual=manual,
            last_status=None,
            last_error=None,
            created_at=now_ms,
            updated_at=now_ms,
        )
        for endpoint in endpoints
    ]
    await tx.insert_deliveries(deliveries)
    return deliveries
