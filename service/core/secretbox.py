"""Secrets at rest: signing secrets sealed with AES-256-GCM under keys derived from the secret key.

Each ``TASKHOOK_SECRET_KEY`` (the current one and those in ``TASKHOOK_SECRET_KEY_PREVIOUS``) is
stretched with HKDF-SHA256 into a key for this purpose alone, so the same secret key can sign
callback tokens and seal secrets without one use weakening the other. A sealed value is text::

    enc:v1:<key id>:<base64 of nonce | ciphertext | tag>

The key id is a short hash of the derived key: a value names the key that sealed it, so opening
tries that key only, and ``taskhook secrets reencrypt`` can tell which values still need moving.
The *context* (``endpoints.secret:ep_…``) is the associated data: a sealed value copied into
another row or column no longer opens. Pure: the nonce is passed in; errors never include the
value, the plaintext or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.errors import StoreError

#: HKDF ``info``: what the derived key is for (a new use of the secret key gets its own)
PURPOSE = b"taskhook stored-secret v1"
PREFIX = "enc:v1:"
NONCE_BYTES = 12
KEY_ID_CHARS = 12


class SealedSecretError(StoreError):
    """A sealed value cannot be opened: its key is not configured, or it is damaged or was
    moved from another row. The message names at most the key id, never the value."""

    code = "sealed_secret_error"


@dataclass(frozen=True)
class SealingKey:
    """One derived key and its id. The key material never shows in a ``repr``."""

    key_id: str
    aead: AESGCM = field(repr=False, compare=False)

    @classmethod
    def derive(cls, secret_key: str, purpose: bytes = PURPOSE) -> SealingKey:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret_key.encode()
        )
        key_id = hashlib.sha256(b"taskhook key id\0" + derived).hexdigest()[:KEY_ID_CHARS]
        return cls(key_id, AESGCM(derived))


@dataclass(frozen=True)
class SecretBox:
    """Seals with the current key; opens with whichever configured key a value names."""

    current: SealingKey
    previous: tuple[SealingKey, ...] = ()

    @classmethod
    def from_keys(
        cls, current: str, previous: Iterable[str] = (), purpose: bytes = PURPOSE
    ) -> SecretBox:
        now = SealingKey.derive(current, purpose)
        earlier: dict[str, SealingKey] = {}
        for key in previous:
            derived = SealingKey.derive(key, purpose)
            if derived.key_id != now.key_id:
                earlier.setdefault(derived.key_id, derived)
        return cls(now, tuple(earlier.values()))

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this box can open with."""
        return frozenset({self.current.key_id, *(k.key_id for k in self.previous)})

    def seal(self, plaintext: str, context: str, nonce: bytes) -> str:
        """``plaintext`` sealed under the current key, bound to ``context``. ``nonce`` must be
        ``NONCE_BYTES`` fresh random bytes: GCM reused with one key and nonce leaks both."""
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"the nonce must be {NONCE_BYTES} bytes")
        sealed = self.current.aead.encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self.current.key_id}:{body}"

    def open(self, value: str, context: str) -> str:
        """The plaintext of a value :meth:`seal` made for ``context``."""
        key_id, body = _split(value)
        key = self._key(key_id)
        if key is None:
            raise SealedSecretError(
                f"A stored secret is sealed with a key that is not configured (key id {key_id})."
                " Set TASKHOOK_SECRET_KEY_PREVIOUS to the key that sealed it."
            )
        try:
            return key.aead.decrypt(
                body[:NONCE_BYTES], body[NONCE_BYTES:], context.encode()
            ).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SealedSecretError(
                f"A stored secret does not open with its key (key id {key_id}): it is damaged"
                " or belongs to another row."
            ) from None

    def is_current(self, value: str) -> bool:
        """Sealed under the current key (nothing for ``reencrypt`` to move)."""
        return is_sealed(value) and _split(value)[0] == self.current.key_id

    def _key(self, key_id: str) -> SealingKey | None:
        if key_id == self.current.key_id:
            return self.current
        return next((k for k in self.previous if k.key_id == key_id), None)


def is_sealed(value: str) -> bool:
    """Whether ``value`` is a sealed value (else it is a plaintext written before sealing)."""
    return value.startswith(PREFIX)


def key_id_of(value: str) -> str:
    """The id of the key that sealed ``value``."""
    return _split(value)[0]


def _split(value: str) -> tuple[str, bytes]:
    key_id, colon, body = value.removeprefix(PREFIX).partition(":")
    if not is_sealed(value) or not colon or len(key_id) != KEY_ID_CHARS:
        raise SealedSecretError("A stored secret is not in the sealed format.")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SealedSecretError("A stored secret is not in the sealed format.") from None
    if len(raw) < NONCE_BYTES + 16:  # a nonce and a tag at least
        raise SealedSecretError("A stored secret is not in the sealed format.")
    return key_id, raw
