"""The event log, read: events, the deliveries each one owes, and every attempt of a delivery.

Everything here is scoped to one account. The store's delivery and attempt lists are keyed by
their parent only, so each use case first proves the parent (event, endpoint, delivery) is the
caller's; another account's id is answered exactly like an unknown one (404, no existence leak).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from service.core.clock import parse_rfc3339, to_rfc3339
from service.core.events import EVENT_TYPES, Event
from service.core.ids import is_id
from service.core.pagination import PageRequest
from service.endpoints import get_endpoint
from service.errors import MalformedRequest, NotFound, ValidationFailed
from service.store.base import DELIVERY_STATUSES, Attempt, Delivery, EventFilter, Reads, Store


def parse_event_filter(query: Mapping[str, str]) -> EventFilter:
    """``?type=&task_id=&after=&before=``: a type must be one we send (a typo would otherwise
    look like an empty log); the bounds are RFC 3339 and exclusive."""
    event_type = query.get("type")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(EVENT_TYPES)}.", field="type")
    after, before = _time(query, "after"), _time(query, "before")
    return EventFilter(type=event_type, task_id=query.get("task_id"), after=after, before=before)


def parse_delivery_status(raw: str | None) -> str | None:
    if raw is not None and raw not in DELIVERY_STATUSES:
        raise ValidationFailed(
            f"status must be one of {', '.join(DELIVERY_STATUSES)}.", field="status"
        )
    return raw


async def get_event(reads: Reads, account_id: str, event_id: str) -> Event:
    """The account's event, or 404 (another account's too)."""
    found = await reads.get_event(account_id, event_id) if is_id(event_id, "evt") else None
    if found is None:
        raise NotFound("No such event.", field="event_id")
    return found


async def list_events(
    store: Store, account_id: str, where: EventFilter, page: PageRequest
) -> list[Event]:
    """Newest first: ids are time-ordered, so the page cursor is the last id shown."""
    return await store.list_events(account_id, where, page)


async def event_deliveries(
    store: Store, account_id: str, event_id: str, page: PageRequest
) -> list[Delivery]:
    """Every delivery of the event, replays included (they share its id), newest first."""
    event = await get_event(store, account_id, event_id)
    return await store.list_deliveries_for_event(event.id, page)


async def endpoint_deliveries(
    store: Store, account_id: str, endpoint_id: str, status: str | None, page: PageRequest
) -> list[Delivery]:
    endpoint = await get_endpoint(store, account_id, endpoint_id)
    return await store.list_deliveries_for_endpoint(endpoint.id, status, page)


async def delivery_attempts(
    store: Store, account_id: str, delivery_id: str, after: str | None, limit: int
) -> list[Attempt]:
    """A delivery's attempts in the order they were made (their numbers), after the attempt
    ``after`` (the cursor), ``limit + 1`` of them so the caller can tell whether more follow.
    Oldest first, unlike the other lists: an attempt history reads as a sequence."""
    found = await store.get_delivery(account_id, delivery_id) if is_id(delivery_id, "dlv") else None
    if found is None:
        raise NotFound("No such delivery.", field="delivery_id")
    return await store.list_attempts_after(found.id, after, limit)


def is_purged(event: Event) -> bool:
    """Retention empties an old event's payload in place; the row and its history stay."""
    return event.payload == ""


def event_object(event: Event) -> dict[str, Any]:
    """The API's event: ``payload`` is the JSON object exactly as subscribers receive it
    (``null`` once retention has purged it)."""
    return {
        "id": event.id,
        "type": event.type,
        "task_id": event.task_id,
        "created_at": to_rfc3339(event.created_at),
        "payload": None if is_purged(event) else json.loads(event.payload),
    }


def delivery_object(delivery: Delivery) -> dict[str, Any]:
    d = delivery
    return {
        "id": d.id,
        "event_id": d.event_id,
        "endpoint_id": d.endpoint_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": None if d.next_attempt_at is None else to_rfc3339(d.next_attempt_at),
        "manual": d.manual,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": to_rfc3339(d.created_at),
        "updated_at": to_rfc3339(d.updated_at),
    }


def attempt_object(attempt: Attempt) -> dict[str, Any]:
    a = attempt
    return {
        "id": a.id,
        "delivery_id": a.delivery_id,
        "number": a.number,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "response_body": a.response_body,
        "error": a.error,
        "manual": a.manual,
        "created_at": to_rfc3339(a.created_at),
    }


def parse_time(raw: object, name: str) -> int:
    """An RFC 3339 timestamp (offset required) as unix ms; 400 naming ``name`` otherwise."""
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return parse_rfc3339(raw)
    except (ValueError, OverflowError):
        raise MalformedRequest(
            f"{name} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z.", field=name
        ) from None


def _time(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    return None if raw is None else parse_time(raw, name)
