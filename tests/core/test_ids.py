"""Prefixed ULID-style ids: layout, ordering by time, prefix rules and ``is_id``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.ids import PREFIXES, is_id, make_id, new_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
T0 = 1_700_000_000_000
MAX_MS = 2**48 - 1
ZERO = bytes(10)

times = st.integers(min_value=0, max_value=MAX_MS)
entropies = st.binary(min_size=10, max_size=10)
prefixes = st.sampled_from(sorted(PREFIXES))


def decode(body: str) -> tuple[int, bytes]:
    """Crockford base32 → (milliseconds, entropy), per the ULID layout."""
    value = 0
    for char in body:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80, (value & (2**80 - 1)).to_bytes(10, "big")


def test_contract_prefixes_are_known() -> None:
    assert {"task", "evt", "ep", "dlv", "cb"} <= PREFIXES


@given(prefix=prefixes, ms=times, entropy=entropies)
def test_layout_is_prefix_and_26_crockford_chars_encoding_time_then_entropy(
    prefix: str, ms: int, entropy: bytes
) -> None:
    made = make_id(prefix, ms, entropy)
    head, _, body = made.partition("_")
    assert head == prefix
    assert len(body) == 26
    assert set(body) <= set(CROCKFORD)
    assert decode(body) == (ms, entropy)
    assert is_id(made, prefix)


@given(prefix=prefixes, a=st.tuples(times, entropies), b=st.tuples(times, entropies))
def test_ids_sort_like_time_then_entropy(
    prefix: str, a: tuple[int, bytes], b: tuple[int, bytes]
) -> None:
    id_a, id_b = make_id(prefix, *a), make_id(prefix, *b)
    assert (id_a < id_b) == (a < b)
    assert (id_a == id_b) == (a == b)


@given(
    earlier=st.integers(min_value=0, max_value=MAX_MS - 1),
    gap=st.integers(min_value=1, max_value=10**9),
    x=entropies,
    y=entropies,
)
def test_a_later_id_sorts_after_whatever_the_randomness(
    earlier: int, gap: int, x: bytes, y: bytes
) -> None:
    later = min(earlier + gap, MAX_MS)
    assert make_id("task", earlier, x) < make_id("task", later, y)


def test_known_extremes() -> None:
    assert make_id("task", 0, ZERO) == "task_" + "0" * 26
    assert make_id("evt", MAX_MS, b"\xff" * 10) == "evt_7" + "Z" * 25


@pytest.mark.parametrize("prefix", ["tsk", "Task", "", "task_", "user", "key "])
def test_unknown_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        make_id(prefix, T0, ZERO)


@pytest.mark.parametrize("size", [0, 9, 11, 16])
def test_entropy_must_be_10_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="10 bytes"):
        make_id("task", T0, bytes(size))


def test_new_id_is_fresh_and_well_formed() -> None:
    made = {new_id("task", T0) for _ in range(50)}
    assert len(made) == 50
    assert all(is_id(m, "task") for m in made)
    assert all(decode(m.removeprefix("task_"))[0] == T0 for m in made)


def test_new_id_refuses_unknown_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id("nope", T0)


GOOD = make_id("task", T0, bytes(range(10)))
GOOD_BODY = GOOD.removeprefix("task_")


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        pytest.param(GOOD.replace("task_", "evt_"), "task", id="other-prefix"),
        pytest.param(GOOD, "evt", id="asked-for-other-prefix"),
        pytest.param(GOOD_BODY, "task", id="no-prefix"),
        pytest.param("task" + GOOD_BODY, "task", id="no-underscore"),
        pytest.param("task_" + GOOD_BODY[:-1], "task", id="25-chars"),
        pytest.param(GOOD + "0", "task", id="27-chars"),
        pytest.param("task_" + GOOD_BODY.lower(), "task", id="lowercase"),
        pytest.param("task_" + "I" + GOOD_BODY[1:], "task", id="letter-I"),
        pytest.param("task_" + "L" + GOOD_BODY[1:], "task", id="letter-L"),
        pytest.param("task_" + "O" + GOOD_BODY[1:], "task", id="letter-O"),
        pytest.param("task_" + "U" + GOOD_BODY[1:], "task", id="letter-U"),
        pytest.param("task_task_" + GOOD_BODY, "task", id="double-prefix"),
        pytest.param(" " + GOOD, "task", id="leading-space"),
        pytest.param(GOOD + "\n", "task", id="trailing-newline"),
        pytest.param("", "task", id="empty"),
        pytest.param("task_", "task", id="prefix-only"),
    ],
)
def test_is_id_refuses_other_shapes(text: str, prefix: str) -> None:
    assert not is_id(text, prefix)


def test_is_id_accepts_a_made_id() -> None:
    assert is_id(GOOD, "task")
