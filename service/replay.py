"""Replays: send an event again, recover what an endpoint failed to receive, re-apply a callback.

A replay never revives an old delivery. It is a new delivery (``manual``) of the *same event
row*, so the subscriber gets the same ``webhook-id`` and byte-identical body (the receiver's
de-duplication keeps working), while the old delivery and its attempts stay as they happened.
The new deliveries of one request, and nothing else, are written in one transaction: a replay
is either wholly queued or not at all. The caller wakes the delivery loop after the commit.

Every use case takes ``account_id``: the API passes the caller's, so another account's event,
endpoint or callback is a 404; the operator's CLI passes ``None`` and reaches any account's
objects by id (an endpoint is still looked up in the event's own account).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service import inbound
from service.core.clock import Clock
from service.core.endpoints import Endpoint, recipients
from service.core.events import Event
from service.core.ids import is_id
from service.endpoints import get_endpoint
from service.errors import Conflict, NotFound, ValidationFailed
from service.events import get_event, is_purged, parse_time
from service.logs import get_logger
from service.outbox import deliver
from service.store.base import CallbackRecord, Delivery, Reads, Store
from service.upstream import Upstream

log = get_logger("taskhook.replay")

#: the end of a recovery window left open (``until`` omitted): no failure is too recent
OPEN_END = 2**62
_REPLAY_FIELDS = frozenset({"endpoint_id"})
_RECOVER_FIELDS = frozenset({"since", "until", "dry_run"})


@dataclass(frozen=True)
class RecoverRequest:
    """``since`` ≤ a failed delivery's ``created_at`` < ``until`` (ms; ``None``: open-ended)."""

    since: int
    until: int | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Replayed:
    event: Event
    deliveries: list[Delivery]


@dataclass(frozen=True)
class Recovered:
    endpoint: Endpoint
    #: how many events were (or, for a dry run, would be) sent again
    count: int
    #: the new deliveries (none for a dry run)
    deliveries: list[Delivery]
    dry_run: bool


def parse_replay(body: object) -> str | None:
    """``{endpoint_id?}`` (an absent body counts as ``{}``): the one endpoint to send to, or
    ``None`` for every endpoint subscribed now."""
    fields = _object({} if body is None else body, _REPLAY_FIELDS)
    endpoint_id = fields.get("endpoint_id")
    if endpoint_id is not None and not isinstance(endpoint_id, str):
        raise ValidationFailed("endpoint_id must be an endpoint id (ep_…).", field="endpoint_id")
    return endpoint_id


def parse_recover(body: object) -> RecoverRequest:
    """``{since, until?, dry_run?}``; a bound that is not RFC 3339 is a 400. ``until`` at or
    before ``since`` is an empty window (nothing matches), not an error: JSON Schema cannot say
    "later than", and the document must not describe requests the server refuses."""
    fields = _object(body, _RECOVER_FIELDS)
    if fields.get("since") is None:
        raise ValidationFailed("since is required.", field="since")
    since = parse_time(fields["since"], "since")
    until = None if fields.get("until") is None else parse_time(fields["until"], "until")
    dry_run = fields.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValidationFailed("dry_run must be true or false.", field="dry_run")
    return RecoverRequest(since, until, dry_run)


def replay_targets(event: Event, endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Who a replay without an ``endpoint_id`` goes to: whoever the event would fan out to if it
    happened now (enabled, undeleted, subscribed). Two events never fan out, so they keep their
    original audience: a ``ping`` goes back only to the endpoint it tested, and an
    ``endpoint.disabled`` still skips the endpoint it is about."""
    subject = _data(event).get("endpoint_id")
    if event.type == "ping":
        return [e for e in endpoints if e.id == subject and e.enabled and e.deleted_at is None]
    exclude = subject if event.type == "endpoint.disabled" and isinstance(subject, str) else None
    return recipients(endpoints, event.type, exclude=exclude)


async def replay_event(
    store: Store,
    clock: Clock,
    *,
    account_id: str | None,
    event_id: str,
    endpoint_id: str | None = None,
) -> Replayed:
    """Queue the event again: to ``endpoint_id`` alone (whatever its event filter: it was asked
    for by name), or to every endpoint subscribed now (possibly none). An event whose payload
    retention has purged is refused (409 ``event_purged``): there is nothing left to send."""
    now = clock()
    async with store.transaction() as tx:
        event = await _event(tx, account_id, event_id)
        if is_purged(event):
            raise Conflict(
                "The retention policy has removed this event's payload; it cannot be sent again.",
                code="event_purged",
            )
        if endpoint_id is None:
            targets = replay_targets(event, await tx.endpoints_for_account(event.account_id))
        else:
            targets = [_enabled(await get_endpoint(tx, event.account_id, endpoint_id))]
        deliveries = await deliver(tx, event, targets, now, manual=True)
    log.info(
        "event.replayed", event_id=event.id, delivery_ids=[d.id for d in deliveries],
        endpoint_ids=[d.endpoint_id for d in deliveries],
    )  # fmt: skip
    return Replayed(event, deliveries)


async def recover_endpoint(
    store: Store,
    clock: Clock,
    *,
    account_id: str | None,
    endpoint_id: str,
    request: RecoverRequest,
) -> Recovered:
    """Send again, once each, the events whose delivery to this endpoint failed inside the
    window (see ``Reads.recoverable_events``). A dry run only counts them, and may look at a
    disabled endpoint (to see what re-enabling and recovering would send); a real one refuses
    a disabled endpoint with 422, as its deliveries could only fail."""
    until = OPEN_END if request.until is None else request.until
    if request.dry_run:
        endpoint = await _endpoint(store, account_id, endpoint_id)
        events = await store.recoverable_events(endpoint.id, request.since, until)
        return Recovered(endpoint, len(events), [], dry_run=True)
    now = clock()
    async with store.transaction() as tx:
        endpoint = _enabled(await _endpoint(tx, account_id, endpoint_id))
        deliveries: list[Delivery] = []
        for event in await tx.recoverable_events(endpoint.id, request.since, until):
            deliveries += await deliver(tx, event, [endpoint], now, manual=True)
    log.info(
        "endpoint.recovered", endpoint_id=endpoint.id, count=len(deliveries),
        delivery_ids=[d.id for d in deliveries],
    )  # fmt: skip
    return Recovered(endpoint, len(deliveries), deliveries, dry_run=False)


async def replay_callback(
    up: Upstream, *, account_id: str | None, callback_id: str
) -> CallbackRecord:
    """Re-apply a kept callback through the ledger (``inbound.replay_callback``): a no-op if it
    was applied, applied now if it was kept ``pending``."""
    if account_id is None:
        found = await up.store.get_callback_by_id(callback_id) if is_id(callback_id, "cb") else None
        if found is None:
            raise NotFound("No such callback.", field="id")
        account_id = found.account_id
    return await inbound.replay_callback(up, account_id, callback_id)


async def _event(reads: Reads, account_id: str | None, event_id: str) -> Event:
    if account_id is not None:
        return await get_event(reads, account_id, event_id)
    found = await reads.get_event_by_id(event_id) if is_id(event_id, "evt") else None
    if found is None:
        raise NotFound("No such event.", field="event_id")
    return found


async def _endpoint(reads: Reads, account_id: str | None, endpoint_id: str) -> Endpoint:
    if account_id is not None:
        return await get_endpoint(reads, account_id, endpoint_id)
    found = await reads.get_endpoint_by_id(endpoint_id) if is_id(endpoint_id, "ep") else None
    if found is None or found.deleted_at is not None:
        raise NotFound("No such endpoint.", field="endpoint_id")
    return found


def _enabled(endpoint: Endpoint) -> Endpoint:
    if not endpoint.enabled:
        raise Conflict(
            "The endpoint is disabled; enable it (PATCH enabled: true) before sending to it.",
            field="endpoint_id",
            code="endpoint_disabled",
        )
    return endpoint


def _data(event: Event) -> Mapping[str, Any]:
    data = json.loads(event.payload).get("data") if event.payload else None
    return data if isinstance(data, dict) else {}


def _object(body: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise ValidationFailed(
            f"Unknown field{'s' if len(unknown) > 1 else ''} {names}.", field=unknown[0]
        )
    return body
