"""compactjson writes what ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` writes,
including what orjson alone refuses, and ``json`` reads it back as it was."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.core import compactjson

_scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63) | st.text()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _stdlib(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@given(_values)
def test_same_text_as_the_standard_library(value: Any) -> None:
    text = compactjson.dumps(value)
    assert text == _stdlib(value)
    assert json.loads(text) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_exactly(value: float) -> None:
    # orjson spells some exponents differently (1e16, not 1e+16); the number is the same
    assert json.loads(compactjson.dumps({"x": value})) == {"x": value}


def test_integers_beyond_64_bits_and_non_string_keys_fall_back() -> None:
    big = {"n": 10**40, "m": -(2**64)}
    assert compactjson.dumps(big) == _stdlib(big)
    assert json.loads(compactjson.dumps(big)) == big
    assert compactjson.dumps({1: "a"}) == '{"1":"a"}'
