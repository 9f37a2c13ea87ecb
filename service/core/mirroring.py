"""Keeping results: a provider's success is held until every image it names is stored.

The provider's word "succeeded" is not yet the task's: its links expire and may not even work.
So a success from a callback or a poll becomes a *hold* — the task stays ``running`` while the
mirror loop downloads and stores each result — and only the stored results make it
``succeeded``. A success naming no image is a failure (``no_result``); images that cannot be
fetched fail it too (``result_unavailable``); both are refunded by the ledger like any failure.

Pure: the decisions here read no clock and do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.core.ledger import Change, Failure, Result, TaskState, TaskStatus

NO_RESULT = Failure("no_result", "The provider reported success but named no image.")
#: the progress a held task shows: all but done
HELD_PROGRESS = 99


def result_unavailable(detail: str) -> Failure:
    return Failure("result_unavailable", f"A result image could not be kept: {detail}")


@dataclass(frozen=True)
class Hold:
    """What a proposed change becomes: ``change`` goes to the ledger; ``sources``, if any, are
    the provider's results still to download (a mirror job for the task)."""

    change: Change
    sources: tuple[Result, ...] = ()


def hold_success(state: TaskState, change: Change) -> Hold:
    """Turn a provider's success into a hold (or a ``no_result`` failure); anything else, a
    success whose results are already kept, or a change to a finished task (which the ledger
    calls duplicate or stale), passes unchanged."""
    if change.status is not TaskStatus.SUCCEEDED or state.status.terminal:
        return Hold(change)
    if change.results and all(result.kept for result in change.results):
        return Hold(change)
    if not change.results:
        return Hold(
            Change(TaskStatus.FAILED, provider_task_id=change.provider_task_id, failure=NO_RESULT)
        )
    held = Change(
        TaskStatus.RUNNING,
        progress=max(state.progress, HELD_PROGRESS),
        provider_task_id=change.provider_task_id,
    )
    return Hold(held, change.results)


def kept_result(
    source: Result,
    asset_id: str,
    content_type: str,
    width: int,
    height: int,
    size: int,
    sha256: str,
) -> Result:
    """A source result once stored: its type and size are the file's, not the provider's."""
    return Result(
        url=source.url, content_type=content_type, width=width, height=height,
        asset_id=asset_id, source_url=source.url, bytes=size, sha256=sha256,
    )  # fmt: skip
