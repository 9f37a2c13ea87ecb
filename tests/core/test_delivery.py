"""Delivery rules, and that what we sign verifies with the reference package."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from service.core.delivery import Verdict, judge, outbound, retry_delay_ms, should_disable
from service.core.signing import encode_secret

SVIX = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (299, Verdict.DELIVERED),
     (301, Verdict.FAILED), (302, Verdict.FAILED), (400, Verdict.FAILED),
     (410, Verdict.GONE), (429, Verdict.FAILED), (500, Verdict.FAILED), (None, Verdict.FAILED)],
)  # fmt: skip
def test_judge(status: int | None, verdict: Verdict) -> None:
    assert judge(status) is verdict


def test_schedule_without_jitter_is_the_schedule() -> None:
    delays = [retry_delay_ms(n, SVIX, 0.0, 0.5) for n in range(len(SVIX))]
    assert delays == [s * 1000 for s in SVIX]
    assert retry_delay_ms(len(SVIX), SVIX, 0.0, 0.5) is None


def test_jitter_bounds_and_retry_after_floor() -> None:
    assert retry_delay_ms(1, SVIX, 0.1, 0.0) == 4500
    assert retry_delay_ms(1, SVIX, 0.1, 1.0) == 5500
    assert retry_delay_ms(1, SVIX, 0.1, 0.5, retry_after_s=60) == 60_000
    assert retry_delay_ms(2, SVIX, 0.0, 0.5, retry_after_s=1) == 300_000


@given(st.integers(0, 7), st.floats(0, 1), st.floats(0, 0.5))
def test_delays_stay_within_jitter(attempts: int, rand: float, jitter: float) -> None:
    delay = retry_delay_ms(attempts, SVIX, jitter, rand)
    assert delay is not None
    base = SVIX[attempts] * 1000
    assert base * (1 - jitter) - 1 <= delay <= base * (1 + jitter) + 1


def test_disable_after_a_continuous_failing_run() -> None:
    five_days = 5 * 86400
    assert not should_disable(None, 10**12, five_days)
    assert not should_disable(0, five_days * 1000 - 1, five_days)
    assert should_disable(0, five_days * 1000, five_days)


def test_outbound_verifies_with_standardwebhooks_under_each_live_secret() -> None:
    old, new = encode_secret(b"o" * 32), encode_secret(b"n" * 32)
    payload = '{"type":"ping","timestamp":"2026-11-21T00:00:00.000Z","data":{}}'
    out = outbound("evt_1", payload, [new, old], int(time.time()))
    assert out.headers["webhook-id"] == "evt_1"
    assert out.body == payload.encode()
    for secret in (old, new):
        assert Webhook(secret).verify(out.body, out.headers) == {
            "type": "ping", "timestamp": "2026-11-21T00:00:00.000Z", "data": {},
        }  # fmt: skip
