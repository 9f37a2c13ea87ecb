"""API keys: ``thk_<prefix>_<secret>``, shown once, kept only as a hash.

The prefix is a public lookup handle (indexed, safe to show in listings and logs); the whole key
is hashed with SHA-256. Keys carry 256 bits of randomness, so a fast hash is enough: a slow
password hash protects guessable secrets, which these are not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_SHAPE = re.compile(r"thk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class IssuedKey:
    prefix: str
    raw: str
    hash: str


def issue_key() -> IssuedKey:
    """A fresh key. ``raw`` must be shown to its owner once and then forgotten."""
    prefix = secrets.token_hex(6)
    raw = f"thk_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedKey(prefix=prefix, raw=raw, hash=hash_key(raw))


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_prefix(raw: str) -> str | None:
    """The lookup prefix of a well-formed key, ``None`` for anything else."""
    match = _SHAPE.fullmatch(raw)
    return match.group(1) if match else None


def key_matches(raw: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(raw), stored_hash)
