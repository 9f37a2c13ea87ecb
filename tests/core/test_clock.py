"""Time: integer milliseconds inside, RFC 3339 UTC at the edge."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.clock import fixed_clock, parse_rfc3339, system_clock, to_rfc3339

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
YEAR_2000 = 946_684_800_000
YEAR_9999_END = 253_402_300_799_999

# from 1000-01-01 (four-digit years) to the end of 9999
milliseconds = st.integers(min_value=-30_610_224_000_000, max_value=YEAR_9999_END)


def oracle(ms: int) -> str:
    """Independent of the module: exact integer arithmetic through timedelta."""
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


# --- clocks -------------------------------------------------------------------------------------


def test_system_clock_is_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = system_clock()
    after = time.time_ns() // 1_000_000
    assert isinstance(now, int)
    assert before <= now <= after


def test_fixed_clock_stands_still() -> None:
    clock = fixed_clock(1234)
    assert [clock() for _ in range(3)] == [1234, 1234, 1234]


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1000, "1970-01-01T00:00:01.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (YEAR_2000, "2000-01-01T00:00:00.000Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (YEAR_9999_END, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_known_instants(ms: int, text: str) -> None:
    assert to_rfc3339(ms) == text


@given(ms=milliseconds)
def test_to_rfc3339_agrees_with_exact_arithmetic(ms: int) -> None:
    text = to_rfc3339(ms)
    assert RFC3339_Z.fullmatch(text)
    assert text == oracle(ms)


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00z", 0),
        ("1970-01-01T00:00:00+00:00", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T19:00:00-05:00", 0),
        ("2000-01-01T00:00:00.000Z", YEAR_2000),
        ("2000-01-01T00:00:00.500Z", YEAR_2000 + 500),
        ("2000-01-01T05:30:00+05:30", YEAR_2000),
    ],
)
def test_parse_known_instants(text: str, ms: int) -> None:
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2023-11-14T22:13:20", id="naive"),
        pytest.param("2023-11-14T22:13:20.123", id="naive-with-ms"),
        pytest.param("2023-11-14", id="date-only"),
        pytest.param("yesterday", id="word"),
        pytest.param("", id="empty"),
        pytest.param("2023-13-01T00:00:00Z", id="month-13"),
        pytest.param("2023-11-14T25:00:00Z", id="hour-25"),
        pytest.param("2023-11-14T22:13:20Z" + " " * 30, id="too-long"),
        pytest.param("1700000000", id="unix-seconds"),
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        parse_rfc3339(text)


@pytest.mark.parametrize("value", [None, 1_700_000_000, b"2023-11-14T22:13:20Z"])
def test_parse_refuses_non_strings(value: Any) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339(value)


def test_naive_timestamp_message_asks_for_an_offset() -> None:
    with pytest.raises(ValueError, match="timezone"):
        parse_rfc3339("2023-11-14T22:13:20")


@given(seconds=st.integers(min_value=-30_610_224_000, max_value=YEAR_9999_END // 1000))
def test_round_trip_at_whole_seconds(seconds: int) -> None:
    ms = seconds * 1000
    assert parse_rfc3339(to_rfc3339(ms)) == ms


@given(
    seconds=st.integers(min_value=0, max_value=4_102_444_800),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_offsets_name_the_same_instant(seconds: int, offset_minutes: int) -> None:
    moment = EPOCH + timedelta(seconds=seconds)
    shifted = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert parse_rfc3339(shifted.isoformat()) == seconds * 1000


def test_round_trip_at_millisecond_precision() -> None:
    second = 1_074_374_511_000  # 2004-01-17T21:21:51Z
    wrong = [ms for ms in range(second, second + 1000) if parse_rfc3339(to_rfc3339(ms)) != ms]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2004-01-17T21:21:51.728Z", 1_074_374_511_728),
        ("1978-07-25T07:12:15.154Z", 270_198_735_154),
        ("2039-04-03T11:37:31.654Z", 2_185_443_451_654),
    ],
)
def test_parse_exact_milliseconds(text: str, ms: int) -> None:
    assert parse_rfc3339(text) == ms
