"""Signed, expiring links to assets: ``{public}/assets/{id}?expires=UNIX&sig=…``.

The link is the credential (no API key: a browser or a provider fetches it), so it is an
HMAC (itsdangerous, SHA-256) over the asset id and the expiry, salted for this one use. A link
is minted afresh in every answer and event, valid ``[assets] url_ttl_seconds``. Several keys may
be given, newest last: links are signed with the newest and accepted under any, as callback
tokens are, so the secret key can rotate without breaking links already handed out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlencode

from itsdangerous import BadSignature, Signer

from service.core.clock import Clock
from service.errors import TaskhookError


class LinkInvalid(TaskhookError):
    """A link whose signature is missing, wrong or expired (403, like an expired S3 link)."""

    status_code = 403
    code = "signature_invalid"


class AssetLinks:
    def __init__(self, keys: Sequence[str], public_base: str, ttl_s: int, clock: Clock) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._signer = Signer(list(keys), salt="taskhook.asset-link", digest_method=hashlib.sha256)
        self._base = public_base.rstrip("/")
        self._ttl_s = ttl_s
        self._clock = clock

    def _message(self, asset_id: str, expires: int) -> bytes:
        return f"{asset_id}.{expires}".encode()

    def url(self, asset_id: str) -> str:
        """A fresh link to the asset, valid for at least the configured time from now. The
        expiry is rounded up to a step (a tenth of the time to live, at most an hour), so the
        answers of one step name the same URL and a browser's cache keeps serving it."""
        step = max(1, min(3600, self._ttl_s // 10))
        expires = -(-(self._clock() // 1000 + self._ttl_s) // step) * step
        sig = self._signer.get_signature(self._message(asset_id, expires)).decode("ascii")
        return f"{self._base}/assets/{asset_id}?" + urlencode({"expires": expires, "sig": sig})

    def verify(self, asset_id: str, expires: str | None, sig: str | None) -> None:
        """``LinkInvalid`` unless ``sig`` signs ``asset_id`` until ``expires``, still ahead."""
        if not expires or not sig or not expires.isascii() or not expires.isdigit():
            raise LinkInvalid("This link is not signed.")
        if len(expires) > 12 or int(expires) * 1000 <= self._clock():
            raise LinkInvalid("This link has expired.")
        try:
            ok = self._signer.verify_signature(
                self._message(asset_id, int(expires)), sig.encode("ascii")
            )
        except (BadSignature, UnicodeError):
            ok = False
        if not ok:
            raise LinkInvalid("This link's signature is not valid.")
