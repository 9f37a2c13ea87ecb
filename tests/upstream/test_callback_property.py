"""Callbacks in any order and any number of copies leave a task in one legal, paid-for state.

The property (from the issue): whatever sequence and duplication of simulator callbacks a task
receives, its final status is legal, its timeline is monotonic, and the credits charged minus
refunded equal what a single clean delivery of the final outcome would give.

Everything is real: settings from ``config/dev.toml``, a fresh SQLite file per example, the
use cases, the simulator adapter's signature check and parser, ``receive_callback`` and the
ledger. Only the clock is ours, a counter moved forward between deliveries, so that every write
lands in its own millisecond (see ``test_the_timeline_keeps_its_order_within_one_millisecond``
for what happens when they do not).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from service.app import build_upstream, open_store, task_policy
from service.assets.keeper import build_assets
from service.assets.mirror import Mirror
from service.core.credits import EntryKind as CreditKind
from service.core.ledger import Change, Outcome, TaskStatus
from service.core.pagination import PageRequest
from service.core.signing import decode_secret, headers_for
from service.core.timeline import EntryKind, TimelineEntry
from service.inbound import receive_callback
from service.providers.simulator.jobs import FAIL_CODE, FAIL_MSG
from service.settings import Settings, load_settings
from service.store.base import Store
from service.upstream import apply_update
from service.usecases import create_account, submit_task
from tests import image_server as images
from tests.backends import reader
from tests.conftest import settings_env

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GRANT = 1000
PROVIDER_TASK = "sim_0123456789abcdef"
TERMINAL_STATES = {"success": TaskStatus.SUCCEEDED, "fail": TaskStatus.FAILED}
LEGAL_OUTCOMES = {Outcome.APPLIED.value, Outcome.DUPLICATE.value, Outcome.STALE.value}


class ManualClock:
    """Unix milliseconds that only move when told to."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


# -- callbacks as the simulator sends them --------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """One callback the simulator would send: its state, its body and its ``webhook-id``."""

    state: str  # generating | success | fail
    progress: int
    msg_id: str

    @property
    def body(self) -> bytes:
        """The envelope ``service.providers.simulator.app`` builds from ``Job.data``."""
        success = self.state == "success"
        failed = self.state == "fail"
        done = success or failed
        urls = [images.shared().url(PROVIDER_TASK)]
        data = {
            "taskId": PROVIDER_TASK,
            "model": "nano-banana",
            "state": self.state,
            "param": json.dumps({"model": "nano-banana", "input": {"prompt": "a red fox"}}),
            "resultJson": json.dumps({"resultUrls": urls}) if success else "",
            "failCode": FAIL_CODE if failed else "",
            "failMsg": FAIL_MSG if failed else "",
            "costTime": 8000 if done else None,
            "createTime": T0,
            "completeTime": T0 + 8000 if done else None,
            "progress": 100 if success else 0 if failed else self.progress,
        }
        if failed:
            envelope = {"code": 501, "msg": FAIL_MSG, "data": data}
        else:
            envelope = {"code": 200, "msg": "success" if success else "generating", "data": data}
        return json.dumps(envelope, separators=(",", ":")).encode()

    @property
    def terminal(self) -> TaskStatus | None:
        return TERMINAL_STATES.get(self.state)


def generating(progress: int, msg_id: str = "msg_progress") -> Callback:
    return Callback("generating", progress, f"{msg_id}_{progress}")


SUCCESS = Callback("success", 100, "msg_success")
FAIL = Callback("fail", 0, "msg_fail")


@dataclass(frozen=True)
class Delivery:
    """One POST of a callback: ``resign`` signs it afresh (a sender's retry), otherwise the
    headers of its first delivery are replayed as they were; ``wait_ms`` passes before it."""

    callback: Callback
    resign: bool = True
    wait_ms: int = 1000


def in_order(*callbacks: Callback) -> list[Delivery]:
    return [Delivery(cb) for cb in callbacks]


@st.composite
def deliveries(draw: st.DrawFn) -> list[Delivery]:
    """A few distinct callbacks, then deliveries of them in any order, with repeats."""
    kinds = st.one_of(
        st.builds(generating, st.integers(0, 99)),
        st.sampled_from([SUCCESS, FAIL]),
    )
    distinct = draw(st.lists(kinds, min_size=1, max_size=6, unique_by=lambda cb: cb.msg_id))
    picks = st.sampled_from(distinct)
    plan = st.builds(
        Delivery, picks, resign=st.booleans(), wait_ms=st.integers(min_value=1, max_value=4000)
    )
    return draw(st.lists(plan, min_size=1, max_size=16))


# -- one scenario against the real components -----------------------------------------------


@dataclass
class Observed:
    status: TaskStatus
    progress: int
    sequence: int
    cost: int
    refunded_on_task: int
    returned: list[str]
    logged: list[str]
    timeline: list[TimelineEntry]
    charges: list[int]
    refunds: list[int]
    grants: list[int]
    balance: int
    event_types: list[str]
    verdicts: set[str] = field(default_factory=set)
    #: mirror jobs the mirror loop settled after the callbacks
    mirrored: int = 0


async def run_scenario(plan: Sequence[Delivery], *, frozen_clock: bool = False) -> Observed:
    """A fresh database and app wiring; one submitted task; ``plan`` delivered through
    ``receive_callback`` as the web route would call it."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load_settings(settings_env(Path(tmp)))
        store = open_store(config)
        await store.open()
        try:
            async with httpx.AsyncClient() as client:
                return await _deliver(config, store, client, plan, frozen_clock)
        finally:
            await store.close()


async def _deliver(
    config: Settings,
    store: Store,
    client: httpx.AsyncClient,
    plan: Sequence[Delivery],
    frozen_clock: bool,
) -> Observed:
    clock = ManualClock(T0)

    def tick(ms: int = 1) -> None:
        if not frozen_clock:
            clock.advance(ms)

    up = build_upstream(config, store, client, clock)
    policy = task_policy(config, tuple(up.providers))
    account = await create_account(store, clock, "property", GRANT)
    tick()
    request = {"prompt": "a red fox", "model": "nano-banana"}
    submitted = await submit_task(
        store,
        policy,
        clock,
        account_id=account.id,
        key_id=None,
        body=request,
        idempotency_key=None,
    )
    task = submitted.task
    assert task.spec.provider == "simulator"
    tick()
    async with store.transaction() as tx:
        task = (
            await apply_update(
                tx,
                task,
                Change(TaskStatus.SUBMITTED, provider_task_id=PROVIDER_TASK),
                clock(),
                kind=EntryKind.STATE_CHANGE,
                source="submitter",
                link=up.link,
            )
        ).task
    # The token from the callback URL the submitter gives the provider.
    token = up.callback_url("simulator", task).rsplit("/", 1)[1]
    keys = [decode_secret(config.simulator.secret.reveal())]
    first_headers: dict[str, dict[str, str]] = {}
    returned: list[str] = []
    verdicts: set[str] = set()
    for delivery in plan:
        tick(delivery.wait_ms)
        cb = delivery.callback
        body = cb.body
        headers = first_headers.get(cb.msg_id)
        if headers is None or delivery.resign:
            headers = headers_for(keys, cb.msg_id, clock() // 1000, body)
            headers["content-type"] = "application/json"
            first_headers.setdefault(cb.msg_id, headers)
        record = await receive_callback(up, "simulator", token, list(headers.items()), body)
        returned.append(record.outcome)
        verdicts.add(record.verdict)
    # the worker's mirror loop, once: a held success is kept and the task succeeds
    clock.advance(1)  # later than the callbacks, frozen clock or not: ids sort by time
    assets = build_assets(config, clock)
    try:
        mirrored = await Mirror(up, assets).mirror_due()
    finally:
        await assets.close()

    final = await store.get_task_by_id(task.id)
    assert final is not None
    entries = await store.list_credit_entries(account.id, PageRequest(limit=100))
    logged = await store.list_callbacks(account.id, task.id, PageRequest(limit=100))
    cursor = await reader(store).execute(
        "SELECT type FROM events WHERE task_id = ? ORDER BY id", (task.id,)
    )
    event_types = [str(row[0]) for row in await cursor.fetchall()]
    await cursor.close()
    return Observed(
        status=final.state.status,
        progress=final.state.progress,
        sequence=final.state.sequence,
        cost=final.cost_credits,
        refunded_on_task=final.refunded_credits,
        returned=returned,
        logged=[r.outcome for r in logged],
        timeline=await store.list_timeline(task.id),
        charges=[e.delta for e in entries if e.kind is CreditKind.CHARGE],
        refunds=[e.delta for e in entries if e.kind is CreditKind.REFUND],
        grants=[e.delta for e in entries if e.kind is CreditKind.GRANT],
        balance=await store.balance(account.id),
        event_types=event_types,
        verdicts=verdicts,
        mirrored=mirrored,
    )


def observe(plan: Sequence[Delivery], *, frozen_clock: bool = False) -> Observed:
    return asyncio.run(run_scenario(plan, frozen_clock=frozen_clock))


# -- what the contract expects ----------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    status: TaskStatus
    progress: int
    outcomes: list[str]


def expected_for(plan: Sequence[Delivery]) -> Expected:
    """The contract, written as plainly as possible: the first terminal callback wins and is
    final; before it, progress only goes up; a repeat of where the task is is a duplicate and
    anything behind it is stale."""
    status, progress = TaskStatus.SUBMITTED, 0
    outcomes: list[str] = []
    for delivery in plan:
        cb = delivery.callback
        outcome = Outcome.APPLIED
        if status.terminal:
            outcome = Outcome.DUPLICATE if cb.terminal is status else Outcome.STALE
        elif cb.terminal is not None:
            status = cb.terminal
            progress = 100 if status is TaskStatus.SUCCEEDED else progress
        elif status is TaskStatus.SUBMITTED:
            status, progress = TaskStatus.RUNNING, cb.progress
        elif cb.progress == progress:
            outcome = Outcome.DUPLICATE
        elif cb.progress < progress:
            outcome = Outcome.STALE
        else:
            progress = cb.progress
        outcomes.append(outcome.value)
    return Expected(status, progress, outcomes)


def check_invariants(plan: Sequence[Delivery], seen: Observed) -> None:
    expected = expected_for(plan)

    # Every delivery was verified, kept, and answered applied, duplicate or stale.
    assert seen.verdicts <= {"verified"}
    assert set(seen.returned) <= LEGAL_OUTCOMES
    assert seen.returned == expected.outcomes
    assert Counter(seen.logged) == Counter(seen.returned)

    # A legal final state: the first terminal callback, else running if anything ran.
    first_terminal = next((d.callback.terminal for d in plan if d.callback.terminal), None)
    if first_terminal is not None:
        assert seen.status is first_terminal
    elif any(d.callback.state == "generating" for d in plan):
        assert seen.status is TaskStatus.RUNNING
    else:
        assert seen.status is TaskStatus.SUBMITTED
    assert (seen.status, seen.progress) == (expected.status, expected.progress)

    # A success was held for the mirror loop, once, and the loop settled it.
    assert seen.mirrored == (first_terminal is TaskStatus.SUCCEEDED)

    # A monotonic timeline.
    timeline = seen.timeline
    # accepted, submitted, one per callback (and the mirror's success)
    assert len(timeline) == 2 + len(plan) + seen.mirrored
    sequences = [e.sequence for e in timeline]
    assert sequences == sorted(sequences)
    applied = [e for e in timeline if e.outcome is Outcome.APPLIED]
    assert [e.sequence for e in applied] == list(range(1, len(applied) + 1))
    assert seen.sequence == applied[-1].sequence == timeline[-1].sequence
    ranks = [e.status.rank for e in applied]
    assert ranks == sorted(ranks)
    assert sum(e.status.terminal for e in applied) <= 1
    progress = [e.progress for e in applied]
    assert progress == sorted(progress)
    assert (timeline[-1].status, timeline[-1].progress) == (seen.status, seen.progress)
    assert all(e.kind is EntryKind.CALLBACK for e in timeline[2 : 2 + len(plan)])

    # Credits: exactly what one clean delivery of the final outcome costs.
    charged = -sum(seen.charges)
    refunded = sum(seen.refunds)
    assert len(seen.charges) == 1
    assert len(seen.refunds) <= 1
    assert charged - refunded == (0 if seen.status is TaskStatus.FAILED else seen.cost)
    assert seen.refunded_on_task == refunded
    assert seen.balance == sum(seen.grants) - charged + refunded == GRANT - charged + refunded

    # One event per status change, never the same type twice.
    changes = [
        e.status for i, e in enumerate(applied) if i == 0 or e.status is not applied[i - 1].status
    ]
    assert seen.event_types == [f"task.{status}" for status in changes]
    assert len(set(seen.event_types)) == len(seen.event_types)


# -- the property -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(plan=deliveries())
def test_any_order_and_duplication_of_callbacks_ends_in_one_legal_paid_state(
    plan: list[Delivery],
) -> None:
    check_invariants(plan, observe(plan))


# -- the named cases --------------------------------------------------------------------------


def test_a_duplicate_completion_is_applied_once() -> None:
    plan = in_order(generating(30), generating(60), SUCCESS, SUCCESS)
    plan.append(Delivery(SUCCESS, resign=False))  # the same headers replayed
    seen = observe(plan)
    check_invariants(plan, seen)
    assert seen.returned == ["applied", "applied", "applied", "duplicate", "duplicate"]
    assert (seen.status, seen.progress) == (TaskStatus.SUCCEEDED, 100)
    assert seen.event_types.count("task.succeeded") == 1
    assert seen.refunds == []


def test_a_completion_before_its_progress_stays_complete() -> None:
    # [sim:reorder]: the completion first, then the progress callbacks that preceded it.
    plan = in_order(SUCCESS, generating(25), generating(50), generating(75))
    seen = observe(plan)
    check_invariants(plan, seen)
    assert seen.returned == ["applied", "stale", "stale", "stale"]
    assert (seen.status, seen.progress) == (TaskStatus.SUCCEEDED, 100)
    # running while its result was kept: the late progress never shows
    assert seen.event_types.count("task.running") == 1
    assert seen.balance == GRANT - seen.cost


def test_a_failure_then_a_success_stays_failed_and_is_refunded_once() -> None:
    plan = in_order(generating(40), FAIL, SUCCESS, FAIL, SUCCESS)
    seen = observe(plan)
    check_invariants(plan, seen)
    assert seen.returned == ["applied", "applied", "stale", "duplicate", "stale"]
    assert seen.status is TaskStatus.FAILED
    assert seen.refunds == [seen.cost]
    assert seen.balance == GRANT
    assert seen.event_types == ["task.queued", "task.submitted", "task.running", "task.failed"]


def test_a_success_then_a_failure_stays_succeeded_without_a_refund() -> None:
    plan = in_order(SUCCESS, FAIL, FAIL)
    seen = observe(plan)
    check_invariants(plan, seen)
    assert seen.returned == ["applied", "stale", "stale"]
    assert seen.status is TaskStatus.SUCCEEDED
    assert seen.refunds == []
    assert seen.balance == GRANT - seen.cost
    assert seen.event_types == [
        "task.queued", "task.submitted", "task.running", "task.succeeded",
    ]  # fmt: skip


# -- what the property found ------------------------------------------------------------------


def test_the_timeline_keeps_its_order_within_one_millisecond() -> None:
    # The clock does not move: every write lands in the same millisecond, as writes do when
    # callbacks come faster than the clock ticks. Ten entries in one millisecond come back
    # sorted by chance once in 10! listings.
    plan = in_order(*(generating(p) for p in range(10, 100, 10)), SUCCESS)
    seen = observe(plan, frozen_clock=True)
    assert seen.returned == ["applied"] * len(plan)
    assert [e.sequence for e in seen.timeline] == list(range(1, len(plan) + 4))  # + the mirror
