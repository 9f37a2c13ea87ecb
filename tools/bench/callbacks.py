"""Simulator completion callbacks, as the simulator sends them, for tasks the bench seeded.

Each is what ``service.providers.simulator`` would POST when a job finishes: the body its
``Job.data`` makes (via ``templates``), signed with Standard Webhooks under the simulator secret
the service derives from its secret key, to ``/callbacks/simulator/{token}`` with a token minted
by the service's own ``CallbackTokens`` — so the service verifies the token and the signature for
real, and applies a real transition (running → succeeded) for each one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.core.signing import decode_secret, headers_for
from service.core.tokens import CallbackTokens
from service.settings import Settings
from tools.bench import templates as tpl
from tools.bench.load import Request
from tools.bench.seed import PoolTask


class Callbacks:
    def __init__(self, settings: Settings, public_base: str) -> None:
        """``settings``: loaded from the same environment as the serve process, so the keys
        agree; ``public_base``: the served address (result URLs are minted on it)."""
        keys = [k.reveal() for k in (*settings.previous_secret_keys, settings.secret_key)]
        self._tokens = CallbackTokens(keys, settings.upstream.token_max_age_seconds, system_clock)
        self._keys = [decode_secret(settings.simulator.secret.reveal())]
        self._body = tpl.callback_body(public_base, TaskStatus.SUCCEEDED)

    def token(self, task: PoolTask) -> str:
        return self._tokens.mint("simulator", task.id, task.created_at)

    def completion(self, task: PoolTask) -> Request:
        """The signed completion callback for ``task``, stamped now (valid for ±5 minutes)."""
        token = self.token(task)
        body = self._body.replace(tpl.PTID, task.provider_task_id).replace(tpl.TOKEN, token)
        data = body.encode()
        headers = headers_for(self._keys, "msg_" + secrets.token_hex(16), int(time.time()), data)
        headers["content-type"] = "application/json"
        return Request(f"/callbacks/simulator/{token}", headers, data, tag=task.id)

    def completions(self, tasks: Iterable[PoolTask]) -> list[Request]:
        return [self.completion(task) for task in tasks]
