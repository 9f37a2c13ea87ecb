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

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return clock() // 1000

        self._keys = list(keys)
        self._max_age_s = max_age_s
        self._signer = ClockedSigner

    def _serializer(self, provider: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self._keys,
            salt=f"taskhook.callback.{provider}",
            signer=self._signer,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def mint(self, provider: str, task_id: str) -> str:
        token: Any = self._serializer(provider).dumps(task_id)
        return str(token)

    def read(self, provider: str, token: str) -> str:
        """The task id a token names; ``TokenInvalid`` (401) if forged, altered or expired."""
        try:
            task_id = self._serializer(provider).loads(token, max_age=self._max_age_s)
        except (BadData, UnicodeError, ValueError):
            raise TokenInvalid("The callback token is not valid.") from None
        if not isinstance(task_id, str) or not is_id(task_id, "task"):
            raise TokenInvalid("The callback token is not valid.")
        return task_id
