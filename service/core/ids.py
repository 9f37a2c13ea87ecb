"""Prefixed, time-ordered identifiers: ``task_01JD0Q…``.

An id is the prefix, an underscore and 26 Crockford base32 characters: 48 bits of milliseconds
then 80 random bits (the ULID layout). Ordering ids orders objects by creation time, so "newest
first" pages and cursors need only the id column's index.
"""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -1, -10)
_BODY = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

PREFIXES = frozenset(
    {
        "acct",
        "key",
        "task",
        "evt",
        "ep",
        "dlv",
        "cb",
        "att",
        "cred",
        "tl",
        "mod",
        "req",
        "ast",
        "upl",
    }
)


def make_id(prefix: str, now_ms: int, entropy: bytes) -> str:
    """Build an id from a time and 10 bytes of entropy (pure: both are passed in)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    if len(entropy) != 10:
        raise ValueError("entropy must be 10 bytes")
    value = ((now_ms & (2**48 - 1)) << 80) | int.from_bytes(entropy, "big")
    # 26 digits of 5 bits, two at a time from a table: ids are made on every write's path.
    return f"{prefix}_{''.join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])}"


def new_id(prefix: str, now_ms: int) -> str:
    """An id with fresh randomness from the OS."""
    return make_id(prefix, now_ms, secrets.token_bytes(10))


def is_id(text: str, prefix: str) -> bool:
    """True when ``text`` has the shape of an id with ``prefix`` (says nothing of existence)."""
    head, sep, body = text.partition("_")
    return sep == "_" and head == prefix and _BODY.fullmatch(body) is not None
