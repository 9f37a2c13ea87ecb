"""Retry timing: exponential backoff with jitter, never sooner than ``Retry-After`` asks.

Randomness is passed in (a float in [0, 1)) so schedules are testable and reproducible.
"""

from __future__ import annotations

import math


def backoff_ms(
    attempt: int, base_ms: int, max_ms: int, rand: float, retry_after_s: float | None = None
) -> int:
    """Delay before retry number ``attempt`` (1 for the first retry).

    "Equal jitter": half of the exponential step is fixed and half random, so retries spread out
    without ever collapsing to zero. A server's ``Retry-After`` is a floor, even above ``max_ms``:
    retrying before it has asked is only another refusal.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    step = min(max_ms, base_ms << min(attempt - 1, 62))
    delay = step / 2 + rand * step / 2
    if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > 0:
        delay = max(delay, retry_after_s * 1000)
    return math.ceil(delay)
