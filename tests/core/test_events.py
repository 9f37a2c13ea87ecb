"""Events: the exact JSON text subscribers receive, ``{"type", "timestamp", "data"}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.events import EVENT_TYPES, envelope, task_event
from service.core.ledger import Change, Result, TaskStatus, apply, initial_state
from service.core.tasks import Task, parse_task_request, task_object

T0 = 1_700_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TASK_EVENT_TYPES = [f"task.{status}" for status in TaskStatus]
CONTRACT_EVENT_TYPES = {
    "task.queued",
    "task.submitted",
    "task.running",
    "task.succeeded",
    "task.failed",
    "endpoint.disabled",
    "ping",
}


def rfc3339(ms: int) -> str:
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def is_compact(text: str) -> bool:
    """Compact JSON: re-encoding with no spaces after separators changes nothing."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False) == text


def a_task(metadata: dict[str, Any] | None = None) -> Task:
    spec = parse_task_request(
        {"prompt": "a fox in the snow", "model": "nano-banana", "metadata": metadata or {}},
        models=("nano-banana",),
        providers=("simulator",),
        default_provider="simulator",
    )
    state = initial_state(T0)
    state = apply(state, Change(TaskStatus.RUNNING, progress=50), T0 + 10).state
    image = Result("https://cdn.example.com/o.png", "image/png", 512, 512)
    state = apply(state, Change(TaskStatus.SUCCEEDED, results=(image,)), T0 + 20).state
    return Task(
        "task_01JD0Q0000000000000000000A", "acct_01JD0Q0000000000000000000B", spec, state, 15, 0, T0
    )


def test_event_types_are_the_contract_types() -> None:
    assert set(EVENT_TYPES) == CONTRACT_EVENT_TYPES


def test_every_status_change_has_an_event_type() -> None:
    assert set(TASK_EVENT_TYPES) <= set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", TASK_EVENT_TYPES)
def test_task_event(event_type: str) -> None:
    task = a_task()
    now = T0 + 30
    event = task_event("evt_01JD0Q0000000000000000000C", task, event_type, now)

    assert event.id == "evt_01JD0Q0000000000000000000C"
    assert event.account_id == task.account_id
    assert event.task_id == task.id
    assert event.type == event_type
    assert event.created_at == now

    body = json.loads(event.payload)
    assert list(body) == ["type", "timestamp", "data"]
    assert body["type"] == event_type
    assert body["timestamp"] == rfc3339(now)
    assert body["data"] == task_object(task)
    assert body["data"]["sequence"] == task.state.sequence
    assert is_compact(event.payload)


@pytest.mark.parametrize(
    "event_type",
    [
        "ping",
        "endpoint.disabled",
        "task.unknown",
        "task.",
        "task",
        "",
        "TASK.QUEUED",
        "task.queued ",
    ],
)
def test_non_task_event_types_are_refused(event_type: str) -> None:
    with pytest.raises(ValueError, match="task event type"):
        task_event("evt_x", a_task(), event_type, T0)


def test_payload_keeps_non_ascii_metadata() -> None:
    task = a_task({"note": "crème brûlée ☕"})
    event = task_event("evt_x", task, "task.succeeded", T0)
    assert json.loads(event.payload)["data"]["metadata"] == {"note": "crème brûlée ☕"}
    assert is_compact(event.payload)


@given(
    event_type=st.sampled_from(sorted(CONTRACT_EVENT_TYPES)),
    data=st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        max_size=5,
    ),
    now=st.integers(min_value=0, max_value=4_102_444_800_000),
)
def test_envelope_is_compact_type_timestamp_data(
    event_type: str, data: dict[str, Any], now: int
) -> None:
    text = envelope(event_type, data, now)
    assert is_compact(text)
    assert json.loads(text) == {"type": event_type, "timestamp": rfc3339(now), "data": data}
    assert list(json.loads(text)) == ["type", "timestamp", "data"]
