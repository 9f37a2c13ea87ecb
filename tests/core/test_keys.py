"""API keys: ``thk_<prefix>_<secret>``, a public lookup prefix and a stored SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.keys import hash_key, issue_key, key_matches, key_prefix

SHAPE = re.compile(r"thk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")
PREFIX = "0123456789ab"
SECRET = "A" * 20 + "-_" + "z9" * 10 + "Q"
WELL_FORMED = f"thk_{PREFIX}_{SECRET}"


def test_well_formed_fixture_is_well_formed() -> None:
    assert len(SECRET) == 43
    assert SHAPE.fullmatch(WELL_FORMED)


@pytest.mark.parametrize("_", range(20))
def test_issue_key_round_trip(_: int) -> None:
    issued = issue_key()
    assert SHAPE.fullmatch(issued.raw)
    assert key_prefix(issued.raw) == issued.prefix
    assert issued.raw.startswith(f"thk_{issued.prefix}_")
    assert issued.hash == hashlib.sha256(issued.raw.encode()).hexdigest()
    assert key_matches(issued.raw, issued.hash)


def test_issued_keys_are_distinct() -> None:
    issued = [issue_key() for _ in range(50)]
    assert len({k.raw for k in issued}) == 50
    assert len({k.prefix for k in issued}) == 50
    assert len({k.hash for k in issued}) == 50


def test_the_stored_hash_is_hex_sha256_not_the_key() -> None:
    issued = issue_key()
    assert re.fullmatch(r"[0-9a-f]{64}", issued.hash)
    assert issued.raw not in issued.hash


def test_key_prefix_of_a_well_formed_key() -> None:
    assert key_prefix(WELL_FORMED) == PREFIX


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param(f"thx_{PREFIX}_{SECRET}", id="wrong-scheme"),
        pytest.param(f"THK_{PREFIX}_{SECRET}", id="uppercase-scheme"),
        pytest.param(f"{PREFIX}_{SECRET}", id="no-scheme"),
        pytest.param(f"thk_{PREFIX.upper()}_{SECRET}", id="uppercase-prefix"),
        pytest.param(f"thk_{PREFIX[:-1]}_{SECRET}", id="prefix-11"),
        pytest.param(f"thk_{PREFIX}c_{SECRET}", id="prefix-13"),
        pytest.param(f"thk_0123456789a-_{SECRET}", id="prefix-dash"),
        pytest.param(f"thk_{PREFIX}_{SECRET[:-1]}", id="secret-42"),
        pytest.param(f"thk_{PREFIX}_{SECRET}x", id="secret-44"),
        pytest.param(f"thk_{PREFIX}_{SECRET[:-1]}=", id="secret-padding"),
        pytest.param(f"thk_{PREFIX}_{SECRET[:-1]}+", id="secret-plus"),
        pytest.param(f"thk_{PREFIX}{SECRET}", id="no-separator"),
        pytest.param(f" {WELL_FORMED}", id="leading-space"),
        pytest.param(f"{WELL_FORMED}\n", id="trailing-newline"),
        pytest.param(f"Bearer {WELL_FORMED}", id="with-scheme-word"),
        pytest.param(f"thk_{PREFIX}_", id="no-secret"),
    ],
)
def test_key_prefix_refuses_malformed_keys(raw: str) -> None:
    assert key_prefix(raw) is None


@given(raw=st.from_regex(SHAPE, fullmatch=True))
def test_key_prefix_of_any_well_formed_key_is_the_12_chars_after_thk(raw: str) -> None:
    assert key_prefix(raw) == raw[4:16]


@given(text=st.text(max_size=80))
def test_key_prefix_of_random_text_is_none(text: str) -> None:
    assert key_prefix(text) is None


def test_key_matches_true_for_its_own_hash() -> None:
    assert key_matches(WELL_FORMED, hash_key(WELL_FORMED))


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        pytest.param(WELL_FORMED, hash_key(WELL_FORMED + "x"), id="other-key-hash"),
        pytest.param(WELL_FORMED[:-1] + "B", hash_key(WELL_FORMED), id="one-char-changed"),
        pytest.param(WELL_FORMED, "", id="empty-hash"),
        pytest.param(WELL_FORMED, hash_key(WELL_FORMED).upper(), id="uppercase-hash"),
        pytest.param(WELL_FORMED, hash_key(WELL_FORMED)[:-1], id="truncated-hash"),
        pytest.param(WELL_FORMED, WELL_FORMED, id="raw-as-hash"),
        pytest.param("", hash_key(WELL_FORMED), id="empty-key"),
    ],
)
def test_key_matches_false(raw: str, stored: str) -> None:
    assert key_matches(raw, stored) is False


def test_key_matches_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    stored = hash_key(WELL_FORMED)
    assert key_matches(WELL_FORMED, stored) is True
    assert key_matches(WELL_FORMED + "x", stored) is False
    assert calls == [(stored, stored), (hash_key(WELL_FORMED + "x"), stored)]
