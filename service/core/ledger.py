"""The task ledger: statuses, the transition rules and ``apply``.

A task only moves forward: ``queued → submitted → running → succeeded | failed``. Steps may be
skipped (a poll can find a queued task already done), progress never decreases, and a terminal
status is final. Every accepted change gets the next per-task ``sequence`` number, so consumers of
our events can drop anything older than what they hold.

``apply`` is total: it never raises, it classifies. Callbacks arrive duplicated, late and out of
order, and each of those is an answer (``duplicate``, ``stale``), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class TaskStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Position on the one-way road; both terminal statuses share the last place."""
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


_RANK = {
    TaskStatus.QUEUED: 0,
    TaskStatus.SUBMITTED: 1,
    TaskStatus.RUNNING: 2,
    TaskStatus.SUCCEEDED: 3,
    TaskStatus.FAILED: 3,
}


class Outcome(StrEnum):
    """What became of a proposed change (the contract's callback ``outcome`` values)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Result:
    """One image of a task. As the provider reports it, only ``url`` (the provider's link) and
    what the task asked for; once kept by taskhook (``service.assets``), also the asset it is
    stored as, what the file itself says (type, size) and where it came from."""

    url: str
    content_type: str
    width: int
    height: int
    asset_id: str | None = None
    source_url: str | None = None
    bytes: int | None = None
    sha256: str | None = None

    @property
    def kept(self) -> bool:
        return self.asset_id is not None


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


@dataclass(frozen=True)
class TaskState:
    """The part of a task the ledger governs."""

    status: TaskStatus
    progress: int
    sequence: int
    provider_task_id: str | None = None
    results: tuple[Result, ...] = ()
    failure: Failure | None = None
    updated_at: int = 0
    completed_at: int | None = None


@dataclass(frozen=True)
class Change:
    """A proposed move, from the submitter, a callback, a poll or the reconciler."""

    status: TaskStatus
    progress: int | None = None
    provider_task_id: str | None = None
    results: tuple[Result, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True)
class Transition:
    """The verdict on a change and the state that follows from it.

    ``event_type`` is set when the status changed (a progress-only step emits no event);
    ``refund_due`` when the task has just failed and its charge must be returned.
    """

    outcome: Outcome
    state: TaskState
    reason: str
    event_type: str | None = None
    refund_due: bool = False


DEFAULT_FAILURE = Failure("provider_error", "The provider reported a failure.")


def initial_state(now_ms: int) -> TaskState:
    """A newly accepted task: queued, progress 0, sequence 1."""
    return TaskState(status=TaskStatus.QUEUED, progress=0, sequence=1, updated_at=now_ms)


def apply(state: TaskState, change: Change, now_ms: int) -> Transition:
    """Decide what ``change`` does to ``state`` at ``now_ms``."""
    problem = _invalid(change)
    if problem is not None:
        return Transition(Outcome.REJECTED, state, problem)

    if state.status.terminal:
        if change.status is state.status:
            return Transition(Outcome.DUPLICATE, state, f"task already {state.status}")
        return Transition(Outcome.STALE, state, f"task already {state.status}; terminal is final")

    if change.status.rank < state.status.rank:
        return Transition(
            Outcome.STALE, state, f"{change.status} is behind the current {state.status}"
        )

    if change.status is state.status:
        return _same_status(state, change, now_ms)

    return _advance(state, change, now_ms)


def _invalid(change: Change) -> str | None:
    if change.progress is not None and not 0 <= change.progress <= 100:
        return "progress must be between 0 and 100"
    if change.status is TaskStatus.SUCCEEDED and not change.results:
        return "a succeeded task needs at least one result"
    if change.results and change.status is not TaskStatus.SUCCEEDED:
        return "only a succeeded task carries results"
    return None


def _same_status(state: TaskState, change: Change, now_ms: int) -> Transition:
    if change.progress is None or change.progress == state.progress:
        return Transition(Outcome.DUPLICATE, state, f"already {state.status}")
    if change.progress < state.progress:
        return Transition(Outcome.STALE, state, "progress never decreases")
    moved = replace(
        state,
        progress=change.progress,
        sequence=state.sequence + 1,
        provider_task_id=state.provider_task_id or change.provider_task_id,
        updated_at=now_ms,
    )
    return Transition(Outcome.APPLIED, moved, f"progress {state.progress} → {change.progress}")


def _advance(state: TaskState, change: Change, now_ms: int) -> Transition:
    status = change.status
    progress = max(state.progress, change.progress or 0)
    if status is TaskStatus.SUCCEEDED:
        progress = 100
    failure = (change.failure or DEFAULT_FAILURE) if status is TaskStatus.FAILED else None
    moved = TaskState(
        status=status,
        progress=progress,
        sequence=state.sequence + 1,
        provider_task_id=change.provider_task_id or state.provider_task_id,
        results=change.results,
        failure=failure,
        updated_at=now_ms,
        completed_at=now_ms if status.terminal else None,
    )
    return Transition(
        Outcome.APPLIED,
        moved,
        f"{state.status} → {status}",
        event_type=f"task.{status}",
        refund_due=status is TaskStatus.FAILED,
    )
