"""The exact text the service would write for a task, made once by the service's own code.

Building a million tasks' rows through ``task_event``, the ledger and the simulator one by one
would take many minutes of pure Python. Instead each kind of row is made once here, through
those same functions (``core.ledger.apply`` moves the task, ``core.events.task_event`` encodes
the event, the simulator's ``Job.data`` shapes its callback), with stand-in values that are then
replaced per row with ``str.replace``. So every payload has the bytes and the size the service
itself would have written, at the cost of a few string copies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from service.core.clock import to_rfc3339
from service.core.events import task_event
from service.core.ledger import Change, Failure, TaskStatus, initial_state
from service.core.ledger import apply as ledger_apply
from service.core.tasks import Task, TaskSpec
from service.providers.base import ProviderUpdate
from service.providers.simulator.jobs import FAIL_CODE, FAIL_MSG, Job, Tags, parse_create
from service.store.rows import to_json

#: every seeded task asks for this (nano-banana, text-to-image, 1k, one PNG: 15 credits)
MODEL = "nano-banana"
TASK_TYPE = "text-to-image"
COST = 15
PROMPT = "a paper boat on a misty pond, golden hour, benchmark"
#: stand-ins, replaced per row
TASK_ID = "task_STANDINSTANDINSTANDINSTAND"
PTID = "sim_standinstandinstandinst"
TOKEN = "STANDINTOKEN"  # noqa: S105 (a stand-in, replaced by a minted token)
#: stand-in times; the rendered RFC 3339 text of each is replaced per row
CREATED_MS = 1_111_111_111_111
STEP_MS = {
    TaskStatus.QUEUED: CREATED_MS,
    TaskStatus.SUBMITTED: 1_222_222_222_222,
    TaskStatus.RUNNING: 1_333_333_333_333,
    TaskStatus.SUCCEEDED: 1_444_444_444_444,
    TaskStatus.FAILED: 1_444_444_444_444,
}
#: how long after creation each step happens in seeded histories
STEP_OFFSET_MS = {
    TaskStatus.QUEUED: 0,
    TaskStatus.SUBMITTED: 300,
    TaskStatus.RUNNING: 900,
    TaskStatus.SUCCEEDED: 1600,
    TaskStatus.FAILED: 1600,
}


@dataclass(frozen=True)
class Step:
    """A task as it is right after reaching ``status``: its row's columns, its event payload
    and the timeline detail, with stand-ins."""

    status: TaskStatus
    progress: int
    sequence: int
    results: str
    failure_code: str | None
    failure_message: str | None
    refunded: int
    payload: str
    detail: str

    def render(self, task_id: str, ptid: str, created_rfc: str, step_rfc: str) -> str:
        """This step's event payload for one task."""
        return (
            self.payload.replace(TASK_ID, task_id)
            .replace(PTID, ptid)
            .replace(_CREATED_RFC, created_rfc)
            .replace(_STEP_RFC[self.status], step_rfc)
        )


_CREATED_RFC = to_rfc3339(CREATED_MS)
_STEP_RFC = {status: to_rfc3339(ms) for status, ms in STEP_MS.items()}


def spec() -> TaskSpec:
    return TaskSpec(
        prompt=PROMPT, model=MODEL, type=TASK_TYPE, provider="simulator", aspect_ratio="1:1",
        metadata={"source": "bench"},
    )  # fmt: skip


def _create_body(callback_url: str) -> dict[str, object]:
    """The simulator's createTask body, as the simulator adapter builds it."""
    s = spec()
    return {
        "model": s.model,
        "callBackUrl": callback_url,
        "input": {
            "prompt": s.prompt, "aspect_ratio": s.aspect_ratio,
            "resolution": s.resolution.upper(), "output_format": s.output_format,
            "num_images": s.num_images,
        },
    }  # fmt: skip


def _job(public_base: str) -> Job:
    url = f"{public_base}/callbacks/simulator/{TOKEN}"
    request = parse_create(_create_body(url))
    return Job(
        PTID, request, Tags(), fails=False, created_ms=STEP_MS[TaskStatus.SUBMITTED],
        due_ms=STEP_MS[TaskStatus.SUCCEEDED], image_id=PTID,
    )  # fmt: skip


def callback_body(public_base: str, status: TaskStatus) -> str:
    """A simulator callback body (JSON text) for ``status`` (running: progress; succeeded or
    failed: the completion), with ``PTID`` and ``TOKEN`` stand-ins. Made by the simulator's own
    ``Job.data``, encoded as the simulator encodes it."""
    job = _job(public_base)
    sim = f"{public_base}/simulator"
    if status is TaskStatus.RUNNING:
        body = {"code": 200, "msg": "generating", "data": job.data(0, sim, progress=50)}
    elif status is TaskStatus.FAILED:
        failed = replace(job, fails=True)
        body = {"code": 501, "msg": FAIL_MSG, "data": failed.data(failed.due_ms, sim)}
    else:
        body = {"code": 200, "msg": "success", "data": job.data(job.due_ms, sim)}
    return json.dumps(body, separators=(",", ":"))


def steps(public_base: str = "http://127.0.0.1:8000") -> dict[TaskStatus, Step]:
    """Each status a task can be in, reached the way the service reaches it."""
    sim = f"{public_base}/simulator"
    task = Task(
        id=TASK_ID, account_id="acct_STANDIN", spec=spec(), state=initial_state(CREATED_MS),
        cost_credits=COST, refunded_credits=0, created_at=CREATED_MS,
    )  # fmt: skip
    found = {TaskStatus.QUEUED: _step(task, TaskStatus.QUEUED, f"accepted; charged {COST} credits")}
    path = [
        (TaskStatus.SUBMITTED, Change(TaskStatus.SUBMITTED, provider_task_id=PTID)),
        (TaskStatus.RUNNING, Change(TaskStatus.RUNNING, progress=50, provider_task_id=PTID)),
    ]
    for status, change in path:
        transition = ledger_apply(task.state, change, STEP_MS[status])
        task = replace(task, state=transition.state)
        found[status] = _step(task, status, transition.reason)
    for status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
        update = ProviderUpdate(
            PTID, status,
            result_urls=(f"{sim}/images/{PTID}/0.png",) if status is TaskStatus.SUCCEEDED else (),
            failure=Failure("provider_failed", f"simulator failed the task: {FAIL_MSG} "
                            f"(failCode {FAIL_CODE})") if status is TaskStatus.FAILED else None,
        )  # fmt: skip
        transition = ledger_apply(task.state, update.change_for(task), STEP_MS[status])
        refunded = COST if transition.refund_due else 0
        done = replace(task, state=transition.state, refunded_credits=refunded)
        found[status] = _step(done, status, transition.reason)
    return found


def _step(task: Task, status: TaskStatus, detail: str) -> Step:
    state = task.state
    event = task_event("evt_STANDIN", task, f"task.{status}", STEP_MS[status])
    return Step(
        status=status, progress=state.progress, sequence=state.sequence,
        results=to_json([asdict(r) for r in state.results]),
        failure_code=state.failure.code if state.failure else None,
        failure_message=state.failure.message if state.failure else None,
        refunded=task.refunded_credits, payload=event.payload, detail=detail,
    )  # fmt: skip
