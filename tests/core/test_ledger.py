"""The task ledger: the transition table written out by hand, and random-history properties."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.ledger import (
    Change,
    Failure,
    Outcome,
    Result,
    TaskState,
    TaskStatus,
    Transition,
    apply,
    initial_state,
)

Q = TaskStatus.QUEUED
S = TaskStatus.SUBMITTED
R = TaskStatus.RUNNING
OK = TaskStatus.SUCCEEDED
F = TaskStatus.FAILED

APPLIED = Outcome.APPLIED
DUP = Outcome.DUPLICATE
STALE = Outcome.STALE
REJECTED = Outcome.REJECTED

T0 = 1_700_000_000_000
LATER = T0 + 5_000
IMAGE = Result("https://cdn.example.com/a.png", "image/png", 1024, 1024)
BOOM = Failure("content_policy", "The provider refused the prompt.")

# Hand-written from the rules: forward moves apply (skipping steps is fine), backwards moves are
# stale, a terminal status is final (the same one again is a duplicate, the other one stale), and
# the same non-terminal status with no progress is a duplicate.
#          proposed:   queued  submitted running succeeded failed
EXPECTED: dict[TaskStatus, dict[TaskStatus, Outcome]] = {
    Q: {Q: DUP, S: APPLIED, R: APPLIED, OK: APPLIED, F: APPLIED},
    S: {Q: STALE, S: DUP, R: APPLIED, OK: APPLIED, F: APPLIED},
    R: {Q: STALE, S: STALE, R: DUP, OK: APPLIED, F: APPLIED},
    OK: {Q: STALE, S: STALE, R: STALE, OK: DUP, F: STALE},
    F: {Q: STALE, S: STALE, R: STALE, OK: STALE, F: DUP},
}


def state_in(status: TaskStatus, progress: int = 40, sequence: int = 4) -> TaskState:
    """A plausible stored state for ``status`` (terminal states carry what they would carry)."""
    return TaskState(
        status=status,
        progress=100 if status is OK else progress,
        sequence=sequence,
        provider_task_id="up-1",
        results=(IMAGE,) if status is OK else (),
        failure=BOOM if status is F else None,
        updated_at=T0,
        completed_at=T0 if status.terminal else None,
    )


def valid_change(status: TaskStatus, progress: int | None = None) -> Change:
    """A change that passes validation: a success carries a result, nothing else does."""
    return Change(status=status, progress=progress, results=(IMAGE,) if status is OK else ())


def assert_untouched(before: TaskState, transition: Transition) -> None:
    assert transition.state == before
    assert transition.event_type is None
    assert transition.refund_due is False


# --- the enums ----------------------------------------------------------------------------------


def test_expected_table_covers_every_pair() -> None:
    assert set(EXPECTED) == set(TaskStatus)
    assert all(set(row) == set(TaskStatus) for row in EXPECTED.values())


def test_outcome_values_are_the_contract_words() -> None:
    assert {str(o) for o in Outcome} == {"applied", "duplicate", "stale", "rejected"}


def test_status_values_are_the_contract_words() -> None:
    assert [str(s) for s in TaskStatus] == ["queued", "submitted", "running", "succeeded", "failed"]


@pytest.mark.parametrize(
    ("earlier", "later"), [(Q, S), (S, R), (R, OK), (R, F), (Q, OK), (Q, F), (S, F)]
)
def test_rank_increases_along_the_road(earlier: TaskStatus, later: TaskStatus) -> None:
    assert earlier.rank < later.rank


@pytest.mark.parametrize(
    ("status", "terminal"), [(Q, False), (S, False), (R, False), (OK, True), (F, True)]
)
def test_terminal_statuses(status: TaskStatus, terminal: bool) -> None:
    assert status.terminal is terminal


def test_initial_state() -> None:
    state = initial_state(T0)
    assert state.status is Q
    assert state.progress == 0
    assert state.sequence == 1
    assert state.updated_at == T0
    assert state.completed_at is None
    assert state.results == ()
    assert state.failure is None


# --- the exhaustive status table ---------------------------------------------------------------


@pytest.mark.parametrize(("current", "proposed"), list(product(TaskStatus, TaskStatus)))
def test_every_status_pair(current: TaskStatus, proposed: TaskStatus) -> None:
    before = state_in(current)
    transition = apply(before, valid_change(proposed), LATER)
    expected = EXPECTED[current][proposed]

    assert transition.outcome is expected
    if expected is not APPLIED:
        assert_untouched(before, transition)
        return

    after = transition.state
    assert after.status is proposed
    assert after.sequence == before.sequence + 1
    assert transition.event_type == f"task.{proposed}"
    assert transition.refund_due is (proposed is F)
    assert after.updated_at == LATER
    assert after.completed_at == (LATER if proposed.terminal else None)
    assert after.progress >= before.progress
    if proposed is OK:
        assert after.progress == 100
        assert after.results == (IMAGE,)
    else:
        assert after.results == ()
    if proposed is F:
        assert after.failure is not None
    else:
        assert after.failure is None


# --- the same status, with progress -------------------------------------------------------------

SAME_STATUS_PROGRESS = [
    (41, APPLIED),
    (100, APPLIED),
    (40, DUP),
    (None, DUP),
    (39, STALE),
    (0, STALE),
]


@pytest.mark.parametrize("status", [Q, S, R])
@pytest.mark.parametrize(("progress", "expected"), SAME_STATUS_PROGRESS)
def test_same_non_terminal_status_with_progress(
    status: TaskStatus, progress: int | None, expected: Outcome
) -> None:
    before = state_in(status, progress=40)
    transition = apply(before, Change(status, progress=progress), LATER)

    assert transition.outcome is expected
    if expected is not APPLIED:
        assert_untouched(before, transition)
        return
    assert progress is not None
    assert transition.event_type is None, "a progress-only step emits no event"
    assert transition.refund_due is False
    assert transition.state.status is status
    assert transition.state.progress == progress
    assert transition.state.sequence == before.sequence + 1
    assert transition.state.updated_at == LATER
    assert transition.state.completed_at is None


@pytest.mark.parametrize(
    "change",
    [
        Change(F, progress=90),
        Change(F, progress=10),
        Change(F, failure=Failure("other", "another reason")),
        Change(OK, progress=100, results=(IMAGE,)),
        Change(OK, results=(Result("https://cdn.example.com/b.png", "image/png", 8, 8),)),
    ],
)
def test_terminal_same_status_is_a_duplicate_whatever_it_carries(change: Change) -> None:
    before = state_in(change.status, progress=40)
    transition = apply(before, change, LATER)
    assert transition.outcome is DUP
    assert_untouched(before, transition)


# --- what an advance carries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before_progress", "change", "expected_progress"),
    [
        (0, Change(R, progress=30), 30),
        (50, Change(R, progress=20), 50),
        (50, Change(R), 50),
        (60, Change(F), 60),
        (60, Change(F, progress=80), 80),
        (10, Change(OK, progress=20, results=(IMAGE,)), 100),
        (10, Change(OK, results=(IMAGE,)), 100),
    ],
)
def test_progress_on_advance_never_decreases(
    before_progress: int, change: Change, expected_progress: int
) -> None:
    before = state_in(S, progress=before_progress)
    transition = apply(before, change, LATER)
    assert transition.outcome is APPLIED
    assert transition.state.progress == expected_progress


def test_failed_without_a_failure_gets_a_default_failure() -> None:
    transition = apply(state_in(R), Change(F), LATER)
    assert transition.state.failure is not None
    assert transition.state.failure.code
    assert transition.state.failure.message


def test_failed_keeps_the_given_failure() -> None:
    transition = apply(state_in(R), Change(F, failure=BOOM), LATER)
    assert transition.state.failure == BOOM


def test_a_failure_on_a_non_failed_change_is_not_kept() -> None:
    transition = apply(state_in(Q), Change(R, failure=BOOM), LATER)
    assert transition.outcome is APPLIED
    assert transition.state.failure is None


@pytest.mark.parametrize(
    ("stored", "proposed", "expected"),
    [
        (None, "up-9", "up-9"),
        ("up-1", None, "up-1"),
    ],
)
def test_provider_task_id_is_kept_or_learned(
    stored: str | None, proposed: str | None, expected: str
) -> None:
    before = replace(state_in(Q), provider_task_id=stored)
    transition = apply(before, Change(S, provider_task_id=proposed), LATER)
    assert transition.state.provider_task_id == expected


def test_progress_step_learns_provider_task_id_when_unknown() -> None:
    before = replace(state_in(R), provider_task_id=None)
    transition = apply(before, Change(R, progress=60, provider_task_id="up-3"), LATER)
    assert transition.state.provider_task_id == "up-3"


# --- rejected changes ---------------------------------------------------------------------------

REJECTED_CHANGES = [
    pytest.param(Change(R, progress=-1), id="progress-below-0"),
    pytest.param(Change(R, progress=101), id="progress-above-100"),
    pytest.param(Change(Q, progress=-50), id="queued-negative-progress"),
    pytest.param(Change(OK, progress=101, results=(IMAGE,)), id="succeeded-progress-101"),
    pytest.param(Change(OK), id="succeeded-without-results"),
    pytest.param(Change(OK, progress=100), id="succeeded-100-without-results"),
    pytest.param(Change(R, results=(IMAGE,)), id="results-on-running"),
    pytest.param(Change(F, results=(IMAGE,)), id="results-on-failed"),
    pytest.param(Change(Q, results=(IMAGE,)), id="results-on-queued"),
    pytest.param(Change(S, results=(IMAGE,)), id="results-on-submitted"),
]


@pytest.mark.parametrize("current", list(TaskStatus))
@pytest.mark.parametrize("change", REJECTED_CHANGES)
def test_invalid_changes_are_rejected_from_any_status(current: TaskStatus, change: Change) -> None:
    before = state_in(current)
    transition = apply(before, change, LATER)
    assert transition.outcome is REJECTED
    assert transition.reason
    assert_untouched(before, transition)


@pytest.mark.parametrize("progress", [0, 100])
def test_progress_bounds_are_inclusive(progress: int) -> None:
    transition = apply(state_in(Q, progress=0), Change(R, progress=progress), LATER)
    assert transition.outcome is APPLIED
    assert transition.state.progress == progress


# --- properties of random histories -------------------------------------------------------------

results = st.one_of(st.just(()), st.just((IMAGE,)))
changes = st.builds(
    Change,
    status=st.sampled_from(TaskStatus),
    progress=st.one_of(st.none(), st.integers(min_value=-5, max_value=105)),
    provider_task_id=st.one_of(st.none(), st.sampled_from(["up-1", "up-2"])),
    results=results,
    failure=st.one_of(st.none(), st.just(BOOM)),
)


@settings(max_examples=300)
@given(
    history=st.lists(st.tuples(changes, st.integers(min_value=0, max_value=10_000)), max_size=40)
)
def test_random_histories_only_move_forward(history: list[tuple[Change, int]]) -> None:
    state = initial_state(T0)
    now = T0
    applied = terminal_moves = refunds = 0

    for change, step in history:
        now += step
        transition = apply(state, change, now)  # never raises
        after = transition.state

        assert isinstance(transition.outcome, Outcome)
        assert after.status.rank >= state.status.rank
        assert after.progress >= state.progress
        assert 0 <= after.progress <= 100
        if state.status.terminal:
            assert after == state, "terminal is final"

        if transition.outcome is APPLIED:
            applied += 1
            assert after.sequence == state.sequence + 1
            assert after.updated_at == now
        else:
            assert after == state
            assert transition.event_type is None

        if after.status is not state.status:
            assert transition.outcome is APPLIED
            assert transition.event_type == f"task.{after.status}"
        else:
            assert transition.event_type is None

        if after.status.terminal and not state.status.terminal:
            terminal_moves += 1
            assert after.completed_at == now
        assert transition.refund_due is (after.status is F and state.status is not F)
        refunds += transition.refund_due
        if after.status is OK:
            assert after.progress == 100
            assert after.results
        state = after

    assert state.sequence == 1 + applied
    assert terminal_moves <= 1
    assert refunds <= 1
