"""Standard Webhooks signatures (https://www.standardwebhooks.com), byte for byte.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; several
space-separated signatures are allowed so that a secret can rotate without a gap. Secrets are
``whsec_`` + base64 of the key bytes. Pure: the time is passed in, and a failure names its reason
without echoing any signature.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence

from service.errors import Unauthorized

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE_S = 5 * 60


class SignatureInvalid(Unauthorized):
    """A missing, malformed, stale or wrong signature (401)."""

    code = "invalid_signature"


def encode_secret(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret (the prefix is optional, as the spec allows)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret must be base64, optionally prefixed whsec_") from None
    if not key:
        raise ValueError("a webhook secret cannot be empty")
    return key


def sign(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.digest(key, signed, "sha256")  # one-shot, in OpenSSL: a third cheaper
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per live key, space-separated."""
    return " ".join(sign(key, msg_id, timestamp_s, body) for key in keys)


def headers_for(
    keys: Sequence[bytes], msg_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature_header(keys, msg_id, timestamp_s, body),
    }


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a signed message; return its ``webhook-id``. Header names are lower-case."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    given = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not given:
        raise SignatureInvalid("Missing webhook-id, webhook-timestamp or webhook-signature.")
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise SignatureInvalid("webhook-timestamp is not a unix time in seconds.")
    timestamp_s = int(stamp)
    if abs(now_s - timestamp_s) > tolerance_s:
        raise SignatureInvalid("webhook-timestamp is outside the allowed window.")
    candidates = [part.partition(",") for part in given.split(" ") if part]
    for key in keys:
        expected = sign(key, msg_id, timestamp_s, body).partition(",")[2]
        for version, _, value in candidates:
            if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
                return msg_id
    raise SignatureInvalid("No signature matches.")
