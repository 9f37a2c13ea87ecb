"""Ids and timestamps in the service's exact format, made fast enough for millions of rows.

``core.ids.new_id`` encodes 26 Crockford base32 characters one at a time from OS randomness:
right for the service, but ~5 µs each, and a large build makes twenty million. The layout here
is the same (48 bits of milliseconds, then 80 bits), with the time part encoded once per
millisecond and the 80 bits taken from a table of pre-encoded values made by a seeded generator
(so a build is repeatable). An id repeats only if 65 536 ids of one kind fell in the same
millisecond, which no build here comes near. ``tests/tools`` checks the output against
``core.ids.make_id``.
"""

from __future__ import annotations

import random

from service.core.clock import to_rfc3339

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # 10 bits → 2 characters
_SUFFIXES = 1 << 16


def encode(value: int, chars: int) -> str:
    """``value`` as ``chars`` (even) Crockford characters, most significant first."""
    return "".join(_PAIRS[(value >> shift) & 1023] for shift in range(chars * 5 - 10, -1, -10))


class Ids:
    def __init__(self, seed: int = 6) -> None:
        rng = random.Random(seed)  # noqa: S311 (ids for a benchmark, not secrets)
        self.suffixes = [encode(rng.getrandbits(80), 16) for _ in range(_SUFFIXES)]
        self._next = 0
        self._ms = -1
        self._time = ""
        self._rng = rng
        self._days: dict[int, str] = {}

    def __call__(self, prefix: str, now_ms: int) -> str:
        if now_ms != self._ms:
            # 48 bits of time take 10 characters; the first holds only 3 bits (< 8).
            p, t = _PAIRS, now_ms & ((1 << 48) - 1)
            self._ms = now_ms
            self._time = (
                p[t >> 40] + p[(t >> 30) & 1023] + p[(t >> 20) & 1023] + p[(t >> 10) & 1023]
                + p[t & 1023]
            )  # fmt: skip
        self._next = (self._next + 1) & (_SUFFIXES - 1)
        return f"{prefix}_{self._time}{self.suffixes[self._next]}"

    def rfc3339(self, ms: int) -> str:
        """``core.clock.to_rfc3339(ms)``, with the date part computed once per day."""
        day, rest = divmod(ms, 86_400_000)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = to_rfc3339(day * 86_400_000)[:11]
        seconds, milli = divmod(rest, 1000)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        return f"{date}{hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}Z"

    def hex24(self) -> str:
        """24 hex digits (the simulator's task ids are ``sim_`` + 24 hex)."""
        return f"{self._rng.getrandbits(96):024x}"
