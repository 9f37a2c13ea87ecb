"""Callback tokens: the signed, expiring reference to one task in a callback URL.

``/callbacks/{provider}/{token}``: the token is an itsdangerous ``URLSafeTimedSerializer`` value
(HMAC-SHA256) naming the task, salted per provider so a token minted for one provider is
worthless on another's route. Several keys may be given, newest last: tokens are signed with the
newest and accepted under any, so the secret key can rotate without orphaning tasks in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from service.core.clock import Clock
from service.core.ids import is_id
from service.errors import Unauthorized


class TokenInvalid(Unauthorized):
    code = "invalid_token"


class CallbackTokens:
    def __init__(self, keys: Sequence[str], max_age_s: int, clock: Clock) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = list(keys)
        self._max_age_s = max_age_s
        self._clock = clock

    def _serializer(self, provider: str, at_ms: int) -> URLSafeTimedSerializer:
        class Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return at_ms // 1000

        return URLSafeTimedSerializer(
            self._keys,
            salt=f"taskhook.callback.{provider}",
            signer=Signer,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def mint(self, provider: str, task_id: str, issued_at_ms: int) -> str:
        """A token for ``task_id``, dated ``issued_at_ms`` (the task's creation): the same task
        always gets the same URL, so a provider sees one callback URL across our retries."""
        token: Any = self._serializer(provider, issued_at_ms).dumps(task_id)
        return str(token)

    def read(self, provider: str, token: str) -> str:
        """The task id a token names; ``TokenInvalid`` (401) if forged, altered or expired."""
        try:
            serializer = self._serializer(provider, self._clock())
            task_id = serializer.loads(token, max_age=self._max_age_s)
        except (BadData, UnicodeError, ValueError):
            raise TokenInvalid("The callback token is not valid.") from None
        if not isinstance(task_id, str) or not is_id(task_id, "task"):
            raise TokenInvalid("The callback token is not valid.")
        return task_id
