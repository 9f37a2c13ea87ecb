"""Forged and replayed provider callbacks, made from genuine ones the ingress saw.

The callback route has no API key: the token in the URL names the task and the provider's
signature vouches for the body. So the interesting forgeries start from genuine material — a
real token with a body that is not signed for it, a real signed body sent to another task's URL,
a real callback sent again — rather than from random bytes, which only ever test the first gate.

Expectations: a forged, altered or misdirected callback is a 401 (an unknown provider a 404) and
changes nothing; a genuine callback sent again is a 200 whose outcome is ``duplicate`` or
``stale``, never ``applied`` (that would be a second effect). The end checks then confirm from
the callback log that every forgery that got past the token was kept as ``rejected``.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

from tools.soak.api import Answer
from tools.soak.cases import Case
from tools.soak.ingress import Ingress, SeenCallback

KINDS = [
    "bad token", "altered token", "re-encoded token", "unknown provider", "other provider",
    "bad signature", "altered body", "stale timestamp", "unsigned", "other task", "replay",
    "junk body",
]  # fmt: skip
#: a replay must still be inside the 5-minute signature window, with room to spare
REPLAY_WITHIN_S = 200
#: forgeries that pass the token check and so must be kept in the log as ``rejected``
LOGGED_KINDS = frozenset(
    {
        "callback bad signature", "callback altered body", "callback stale timestamp",
        "callback unsigned", "callback other task", "callback junk body",
    }
)  # fmt: skip


def _task_of(seen: SeenCallback) -> str | None:
    try:
        data = json.loads(seen.body)["data"]
        return str(data["taskId"])
    except (ValueError, KeyError, TypeError):
        return None


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _reencoded(token: str, rng: random.Random) -> str:
    """The token with its signature's last character swapped for another that decodes to the
    same bytes: unpadded base64 of 32 bytes ends in a character whose low 2 bits are padding.
    A different token string all the same, which the contract says must be refused."""
    signature = token.rsplit(".", 1)[-1]
    spare_bits = len(signature) * 6 % 8
    last = _B64URL.find(signature[-1])
    if last < 0 or not spare_bits:
        return _flip(token, rng)
    group = last >> spare_bits << spare_bits
    twins = [_B64URL[i] for i in range(group, group + (1 << spare_bits)) if i != last]
    return token[:-1] + rng.choice(twins)


def _flip(token: str, rng: random.Random) -> str:
    i = rng.randrange(len(token))
    swap = "A" if token[i] != "A" else "B"
    return token[:i] + swap + token[i + 1 :]


@dataclass
class Forgery:
    ingress: Ingress
    rng: random.Random
    #: answers by (kind, status or "no answer")
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _queue: list[str] = field(default_factory=list)

    def case(self) -> Case | None:
        genuine = [c for c in self.ingress.callbacks[-500:] if c.status == 200]
        if len(genuine) < 2:
            return None
        seen = self.rng.choice(genuine)
        headers = dict(seen.headers)
        body = seen.body
        token = seen.token
        path = f"/callbacks/{seen.provider}"
        if not self._queue:  # every kind in turn, in a random order each round
            self._queue = self.rng.sample(KINDS, len(KINDS))
        kind = self._queue.pop()
        expect = frozenset({401})
        check = None
        if kind == "bad token":
            token = secrets.token_urlsafe(self.rng.randrange(1, 120))
        elif kind == "altered token":
            token = _flip(token, self.rng)
        elif kind == "re-encoded token":
            token = _reencoded(token, self.rng)
        elif kind == "unknown provider":
            path, expect = "/callbacks/acme", frozenset({404})
        elif kind == "other provider":
            path, expect = "/callbacks/kie", frozenset({404})  # not configured in the soak
        elif kind == "bad signature":
            sig = base64.b64encode(secrets.token_bytes(32)).decode()
            headers["webhook-signature"] = f"v1,{sig}"
        elif kind == "altered body":
            body = body.replace(b'"success"', b'"fail"', 1).replace(b'"state":"', b'"state":"x', 1)
        elif kind == "stale timestamp":
            headers["webhook-timestamp"] = str(int(headers.get("webhook-timestamp", "0")) - 3600)
        elif kind == "unsigned":
            headers = {k: v for k, v in headers.items() if not k.startswith("webhook-")}
        elif kind == "junk body":
            body = b"\x00junk" + body[:10]
        elif kind == "other task":
            task = _task_of(seen)
            others = [c for c in genuine if c.token != seen.token and _task_of(c) != task]
            if not others:
                return None
            token = self.rng.choice(others).token
        elif kind == "replay":
            if seen.at < time.time() - REPLAY_WITHIN_S:
                return None
            expect, check = frozenset({200}), _not_applied
        headers = {k: v for k, v in headers.items() if k in _KEEP or k.startswith("webhook-")}
        return Case(f"callback {kind}", "POST", f"{path}/{token}", expect, None, headers, body,
                    check=check)  # fmt: skip

    def sent(self, case: Case, answer: Answer) -> None:
        status = "no answer" if answer.status is None else str(answer.status)
        self.counts[(case.kind, status)] += 1

    def logged_rejections(self) -> tuple[int, int]:
        """(forgeries answered 401 that must be in the log as rejected, those never answered:
        web died with them in flight, so they may or may not be)."""
        logged = {(k, s): n for (k, s), n in self.counts.items() if k in LOGGED_KINDS}
        sure = sum(n for (_, s), n in logged.items() if s == "401")
        maybe = sum(n for (_, s), n in logged.items() if s == "no answer")
        return sure, maybe


_KEEP = frozenset({"content-type", "user-agent"})


def _not_applied(answer: Answer) -> str | None:
    outcome = answer.field("outcome")
    if outcome in ("duplicate", "stale"):
        return None
    return f"a genuine callback sent again was {outcome!r}: a second effect"
