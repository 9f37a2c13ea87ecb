"""Time as the core sees it: passed in, UTC, stored as integer milliseconds.

Storing milliseconds keeps indexes small and comparisons exact; RFC 3339 is produced only at the
edge, for people and payloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Returns the current time in unix milliseconds. Passed to anything that needs "now".
Clock = Callable[[], int]


def system_clock() -> int:
    """The wall clock, in unix milliseconds."""
    return time.time_ns() // 1_000_000


def fixed_clock(ms: int) -> Clock:
    """A clock stuck at ``ms``: for tests and for replaying history."""
    return lambda: ms


def to_rfc3339(ms: int) -> str:
    """``1700000000123`` → ``"2023-11-14T22:13:20.123Z"`` (always UTC, millisecond precision)."""
    # isoformat, not strftime: half the time, and it is on every event's and response's path
    seconds = datetime.fromtimestamp(ms // 1000, tz=UTC).isoformat()[:19]
    return f"{seconds}.{ms % 1000:03d}Z"


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 timestamp (offset required, ``Z`` allowed) into unix milliseconds.

    Raises ``ValueError`` for anything else, including naive timestamps: guessing a timezone
    silently shifts a filter by hours.
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("expected an RFC 3339 timestamp")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone offset (e.g. 'Z')")
    # Exact integer arithmetic: float seconds times 1000 truncates some instants 1 ms early.
    return (moment - _EPOCH) // timedelta(milliseconds=1)
