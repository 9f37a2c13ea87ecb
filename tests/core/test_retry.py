from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.retry import backoff_ms


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.0, 50), (1, 1.0, 100), (2, 0.0, 100), (3, 0.5, 300), (10, 1.0, 1000), (10, 0.0, 500)],
)
def test_equal_jitter_exponential_capped(attempt: int, rand: float, expected: int) -> None:
    assert backoff_ms(attempt, base_ms=100, max_ms=1000, rand=rand) == expected


def test_retry_after_is_a_floor_even_past_the_cap() -> None:
    assert backoff_ms(1, 100, 1000, 0.0, retry_after_s=5) == 5000
    assert backoff_ms(5, 100, 1000, 1.0, retry_after_s=0.01) == 1000
    assert backoff_ms(1, 100, 1000, 0.0, retry_after_s=float("nan")) == 50


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_ms(0, 100, 1000, 0.5)


@given(st.integers(1, 500), st.floats(0, 1), st.integers(1, 10_000), st.integers(1, 10**7))
def test_never_zero_never_past_cap(attempt: int, rand: float, base: int, cap: int) -> None:
    delay = backoff_ms(attempt, base, cap, rand)
    assert 0 < delay <= max(cap, 1)
