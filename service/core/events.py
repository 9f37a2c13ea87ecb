"""Events: what happened, as the exact JSON body subscribers will receive.

The payload is encoded once, when the event is written, and that text is what gets signed and
sent on every delivery and replay: a re-encoding could change bytes and break signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core import compactjson
from service.core.clock import to_rfc3339
from service.core.tasks import Linker, Task, task_object

EVENT_TYPES = (
    "task.queued",
    "task.submitted",
    "task.running",
    "task.succeeded",
    "task.failed",
    "endpoint.disabled",
    "ping",
)


@dataclass(frozen=True)
class Event:
    id: str
    account_id: str
    type: str
    task_id: str | None
    payload: str
    created_at: int


def envelope(event_type: str, data: dict[str, Any], now_ms: int) -> str:
    """``{"type", "timestamp", "data"}`` as compact JSON text."""
    body = {"type": event_type, "timestamp": to_rfc3339(now_ms), "data": data}
    return compactjson.dumps(body)


def task_event(
    event_id: str, task: Task, event_type: str, now_ms: int, link: Linker | None = None
) -> Event:
    """The event for a task's new status; its data is the task object, with its ``sequence``."""
    if event_type not in EVENT_TYPES or not event_type.startswith("task."):
        raise ValueError(f"not a task event type: {event_type!r}")
    payload = envelope(event_type, task_object(task, link), now_ms)
    return Event(event_id, task.account_id, event_type, task.id, payload, now_ms)
