"""Service bugs the soak found, each reduced to a minimal reproduction.

Each test states what the contract promises and fails until the service keeps the promise; the
soak's own check fails on the same bug. The fixes belong in ``service/``.
"""

from __future__ import annotations

import pytest

from service.core.clock import fixed_clock
from service.core.ids import make_id
from service.core.tokens import CallbackTokens, TokenInvalid

T0 = 1_790_000_000_000
TASK = make_id("task", T0, bytes(10))
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _same_bytes_variants(token: str) -> list[str]:
    """The token with its signature's last character replaced by each other character that
    base64-decodes to the same bytes (43 characters carry 32 bytes: the last one's low 2 bits
    are padding)."""
    last = B64URL.index(token[-1])
    group = last >> 2 << 2
    return [token[:-1] + B64URL[i] for i in range(group, group + 4) if i != last]


def test_a_callback_token_altered_in_its_last_character_is_refused() -> None:
    """CONTRACT.md: "a forged, altered or expired token → 401". Found by the soak (garbage kind
    ``callback altered token``: a genuine callback posted under the altered token was answered
    200 ``stale`` instead of 401). The altered token names the same task under the same
    signature bytes, so it forges nothing, but it is another string that the service accepts:
    the token is malleable."""
    tokens = CallbackTokens(["k" * 40], max_age_s=7 * 86400, clock=fixed_clock(T0))
    token = tokens.mint("simulator", TASK, T0)
    assert tokens.read("simulator", token) == TASK
    for altered in _same_bytes_variants(token):
        with pytest.raises(TokenInvalid):
            tokens.read("simulator", altered)
