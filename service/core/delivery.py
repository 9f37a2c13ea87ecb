"""Delivery rules: what an answer means, when to try again, when to give up on an endpoint.

Pure: the clock and the randomness are passed in. The worker that sends is an adapter around
these decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from service.core.signing import decode_secret, headers_for


class Verdict(StrEnum):
    DELIVERED = "delivered"
    #: a failed attempt that will be retried (or exhausted)
    FAILED = "failed"
    #: 410 Gone: the subscriber asked us to stop; the endpoint is disabled
    GONE = "gone"


def judge(status_code: int | None) -> Verdict:
    """Any 2xx is success; 410 disables; everything else (3xx included, since redirects are
    never followed, and no answer at all) is a failed attempt."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code == 410:
        return Verdict.GONE
    return Verdict.FAILED


def retry_delay_ms(
    attempts_made: int,
    schedule_s: tuple[int, ...],
    jitter_fraction: float,
    rand: float,
    retry_after_s: float | None = None,
) -> int | None:
    """Wait before the next attempt, or ``None`` when the schedule is used up.

    ``schedule_s[i]`` is the wait before attempt ``i + 1`` (the first is normally 0), so a
    delivery gets ``len(schedule_s)`` attempts. Jitter spreads retries by ± ``jitter_fraction``;
    a ``Retry-After`` the subscriber sent is a floor.
    """
    if attempts_made >= len(schedule_s):
        return None
    base_ms = schedule_s[attempts_made] * 1000
    delay = base_ms * (1 + jitter_fraction * (2 * rand - 1))
    if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > 0:
        delay = max(delay, retry_after_s * 1000)
    return max(0, math.ceil(delay))


def should_disable(failing_since_ms: int | None, now_ms: int, threshold_s: int) -> bool:
    """An endpoint that has failed without a single success for ``threshold_s`` is disabled."""
    return failing_since_ms is not None and now_ms - failing_since_ms >= threshold_s * 1000


@dataclass(frozen=True)
class Outbound:
    """The exact bytes and headers of one delivery attempt."""

    body: bytes
    headers: dict[str, str]


def outbound(event_id: str, payload: str, secrets: list[str], now_s: int) -> Outbound:
    """Sign ``payload`` for its endpoint: ``webhook-id`` is the event id, stable across retries
    and replays; one signature per live secret (two while a rotation overlaps)."""
    body = payload.encode("utf-8")
    keys = [decode_secret(secret) for secret in secrets]
    headers = headers_for(keys, event_id, now_s, body)
    headers["content-type"] = "application/json"
    headers["user-agent"] = "taskhook-webhooks/0.1"
    return Outbound(body, headers)
