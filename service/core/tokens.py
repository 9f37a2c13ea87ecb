"""Callback tokens: the signed, expiring reference to one task in a callback URL.

``/callbacks/{provider}/{token}``: the token is an itsdangerous ``URLSafeTimedSerializer`` value
(HMAC-SHA256) naming the task, salted per provider so a token minted for one provider is
worthless on another's route. Several keys may be given, newest last: tokens are signed with the
newest and accepted under any, so the secret key can rotate without orphaning tasks in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, cast

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from service.core.clock import Clock
from service.core.ids import is_id
from service.errors import Unauthorized


class TokenInvalid(Unauthorized):
    code = "invalid_token"


def _canonical(token: str) -> bool:
    """Base64 lets the last character of a part carry unused bits, so one signed token has
    several spellings that decode alike. Only the one we minted is accepted: an altered token
    is refused even when the change falls in those bits."""
    try:
        return all(
            base64_encode(base64_decode(part)).decode("ascii") == part
            for part in token.removeprefix(".").split(".")  # a leading "." marks compression
        )
    except (BadData, UnicodeError, ValueError):
        return False


class _ClockedSigner(TimestampSigner):
    """A signer whose clock is ours (tests move it; minting dates a token by its task)."""

    def __init__(self, *args: Any, now_s: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now_s = now_s

    def get_timestamp(self) -> int:
        return self._now_s()


class CallbackTokens:
    def __init__(self, keys: Sequence[str], max_age_s: int, clock: Clock) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = list(keys)
        self._max_age_s = max_age_s
        self._clock = clock

        self._readers: dict[str, tuple[URLSafeTimedSerializer, TimestampSigner]] = {}

    def _serializer(self, provider: str, now_s: Callable[[], int]) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self._keys,
            salt=f"taskhook.callback.{provider}",
            signer=_ClockedSigner,
            signer_kwargs={"digest_method": hashlib.sha256, "now_s": now_s},
        )

    def _reader(self, provider: str) -> tuple[URLSafeTimedSerializer, TimestampSigner]:
        """A serializer and its signer, kept per provider: reading is on every callback's
        path, and ``loads`` would build a signer (deriving its keys) every time."""
        reader = self._readers.get(provider)
        if reader is None:
            serializer = self._serializer(provider, lambda: self._clock() // 1000)
            signer = cast(TimestampSigner, serializer.make_signer())  # signer=_ClockedSigner
            reader = self._readers[provider] = (serializer, signer)
        return reader

    def mint(self, provider: str, task_id: str, issued_at_ms: int) -> str:
        """A token for ``task_id``, dated ``issued_at_ms`` (the task's creation): the same task
        always gets the same URL, so a provider sees one callback URL across our retries."""
        token: Any = self._serializer(provider, lambda: issued_at_ms // 1000).dumps(task_id)
        return str(token)

    def read(self, provider: str, token: str) -> str:
        """The task id a token names; ``TokenInvalid`` (401) if forged, altered or expired."""
        if not _canonical(token):
            raise TokenInvalid("The callback token is not valid.")
        try:
            serializer, signer = self._reader(provider)
            task_id = serializer.load_payload(signer.unsign(token, max_age=self._max_age_s))
        except (BadData, UnicodeError, ValueError):
            raise TokenInvalid("The callback token is not valid.") from None
        if not isinstance(task_id, str) or not is_id(task_id, "task"):
            raise TokenInvalid("The callback token is not valid.")
        return task_id
