"""A callback that moves a task also reschedules it, in the same write: the reconciler looks
again only once ``callback_deadline_seconds`` pass without news, and never at a finished task."""

from __future__ import annotations

from tests.backends import reader
from tests.conftest import Caller
from tests.upstream.test_callback_rejections import (
    Harness,
    generating_body,
    success_body,
)


async def schedule(h: Harness, task_id: str) -> tuple[int | None, int]:
    """The task's next check, and when its newest callback was applied."""
    async with reader(h.store).execute(
        "SELECT MAX(t.next_check_at), MAX(c.applied_at) FROM tasks t"
        " JOIN callbacks c ON c.task_id = t.id AND c.outcome = 'applied' WHERE t.id = ?",
        (task_id,),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0], row[1]


async def test_progress_pushes_the_next_check_past_the_deadline(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    answered = await h.deliver(task["id"], generating_body(progress=40))
    assert answered.json()["outcome"] == "applied"
    next_check, applied = await schedule(h, task["id"])
    deadline_ms = h.services.settings.upstream.callback_deadline_seconds * 1000
    assert next_check == applied + deadline_ms


async def test_a_finished_task_is_never_checked_again(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    await h.deliver(task["id"], generating_body(progress=40))
    answered = await h.deliver(task["id"], success_body())
    assert answered.json()["outcome"] == "applied"
    next_check, _ = await schedule(h, task["id"])
    assert next_check is None
