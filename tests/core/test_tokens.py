"""Callback tokens: the signed reference to a task in a callback URL."""

from __future__ import annotations

import pytest

from service.core.clock import fixed_clock
from service.core.ids import make_id
from service.core.tokens import CallbackTokens, TokenInvalid

T0 = 1_790_000_000_000
TASK = make_id("task", T0, bytes(10))
OTHER = make_id("task", T0, bytes(range(10)))
DAY_MS = 86_400_000


def tokens(at_ms: int = T0, keys: tuple[str, ...] = ("k" * 40,)) -> CallbackTokens:
    return CallbackTokens(list(keys), max_age_s=7 * 86400, clock=fixed_clock(at_ms))


def test_round_trip_and_stable_per_task() -> None:
    t = tokens()
    token = t.mint("simulator", TASK, T0)
    assert t.read("simulator", token) == TASK
    assert t.mint("simulator", TASK, T0) == token  # the same URL on every submission attempt
    assert t.mint("simulator", OTHER, T0) != token


def test_salted_per_provider() -> None:
    token = tokens().mint("kie", TASK, T0)
    with pytest.raises(TokenInvalid):
        tokens().read("simulator", token)


def test_expires_after_max_age() -> None:
    token = tokens().mint("simulator", TASK, T0)
    assert tokens(T0 + 7 * DAY_MS).read("simulator", token) == TASK
    with pytest.raises(TokenInvalid):
        tokens(T0 + 7 * DAY_MS + 2000).read("simulator", token)


def test_keys_rotate_without_orphaning_tokens() -> None:
    old = tokens(keys=("old" * 14,)).mint("simulator", TASK, T0)
    rotated = tokens(keys=("old" * 14, "new" * 14))
    assert rotated.read("simulator", old) == TASK
    assert rotated.mint("simulator", TASK, T0) != old  # new tokens use the newest key
    with pytest.raises(TokenInvalid):
        tokens(keys=("new" * 14,)).read("simulator", old)


@pytest.mark.parametrize("position", [0, 5, -3, -1])
def test_any_altered_character_is_refused(position: int) -> None:
    token = tokens().mint("simulator", TASK, T0)
    flipped = "A" if token[position] != "A" else "B"
    altered = (
        token[:position] + flipped + token[position + 1 :]
        if position != -1
        else (token[:-1] + flipped)
    )
    with pytest.raises(TokenInvalid):
        tokens().read("simulator", altered)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "é" * 10, "." * 50])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        tokens().read("simulator", garbage)


def test_a_signed_value_that_is_not_a_task_id_is_refused() -> None:
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer(["k" * 40], salt="taskhook.callback.simulator").dumps(["x"])
    with pytest.raises(TokenInvalid):
        tokens().read("simulator", str(forged))


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _same_bytes_variants(token: str) -> list[str]:
    """The token with its signature's last character replaced by each other character that
    base64-decodes to the same bytes (43 characters carry 32 bytes: the last one's low 2 bits
    are padding)."""
    last = B64URL.index(token[-1])
    group = last >> 2 << 2
    return [token[:-1] + B64URL[i] for i in range(group, group + 4) if i != last]


def test_a_token_respelled_in_its_last_character_is_refused() -> None:
    """CONTRACT.md: "a forged, altered or expired token → 401". Found by the soak: a genuine
    callback posted under such a token was answered 200. It names the same task under the same
    signature bytes, so it forges nothing, but it is another string than the one minted."""
    t = tokens()
    token = t.mint("simulator", TASK, T0)
    assert t.read("simulator", token) == TASK
    for altered in _same_bytes_variants(token):
        with pytest.raises(TokenInvalid):
            t.read("simulator", altered)
