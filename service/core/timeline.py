"""Timeline entries: every state change, callback and poll that touched a task, in order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.core.clock import to_rfc3339
from service.core.ledger import Outcome, TaskStatus


class EntryKind(StrEnum):
    STATE_CHANGE = "state_change"
    CALLBACK = "callback"
    POLL = "poll"


@dataclass(frozen=True)
class TimelineEntry:
    id: str
    task_id: str
    kind: EntryKind
    #: who proposed it: api, submitter, callback, poll, reconciler, replay
    source: str
    outcome: Outcome
    status: TaskStatus
    progress: int
    sequence: int
    detail: str
    created_at: int


def timeline_object(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": str(entry.kind),
        "source": entry.source,
        "outcome": str(entry.outcome),
        "status": str(entry.status),
        "progress": entry.progress,
        "sequence": entry.sequence,
        "detail": entry.detail,
        "created_at": to_rfc3339(entry.created_at),
    }
