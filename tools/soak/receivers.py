"""Webhook receivers: subscribers that misbehave the way real ones do.

Each receiver is one endpoint on its own loopback port, served by a deliberately small HTTP/1.1
server written on asyncio streams (not a framework), because the faults worth injecting live
below what frameworks let a handler do: dropping the connection without an answer, never
answering, or not listening at all. Profiles:

- ``healthy`` answers 2xx;
- ``flaky`` answers at random 2xx, 500, 503, 429 with ``Retry-After``, a slow 2xx, a silence
  past the sender's timeout, or a dropped connection;
- ``outage`` answers 2xx but is taken down for a while now and then (``faults``): its port stops
  listening and its open connections are cut;
- ``gone`` answers 2xx until, at random, it answers 410 for good (the endpoint is then disabled
  by design, and excused from "delivered at least once").

Every request is kept as a ``Copy``, checked with the reference ``standardwebhooks`` package
against the endpoint's secret the moment both are known (its timestamp check allows 5 minutes,
so checking at the end of a long run would fail genuine copies). Only copies the receiver
answered 2xx count as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 8 * 1024 * 1024


class Profile(StrEnum):
    HEALTHY = "healthy"
    FLAKY = "flaky"
    OUTAGE = "outage"
    GONE = "gone"


#: what a flaky receiver does, with weights; about 40 % of its answers are failures
FLAKY_ANSWERS: list[tuple[str, int]] = [
    ("200", 52), ("204", 4), ("slow", 4), ("500", 12), ("503", 4), ("429", 8), ("timeout", 6),
    ("close", 10),
]  # fmt: skip
#: chance per request that a ``gone`` receiver decides it is gone (after its first 20 requests)
GONE_CHANCE = 0.03


@dataclass
class Copy:
    """One request as received: what it claimed, whether it verified, what we answered."""

    webhook_id: str
    body_sha256: str
    event_type: str | None
    answer: str
    at: float
    #: which of the endpoint's secrets (by the order we learned them) verify this copy
    verified_by: list[int] = field(default_factory=list)
    #: answered 2xx, the response written out
    accepted: bool = False


@dataclass
class Receiver:
    name: str
    profile: Profile
    rng: random.Random
    #: how long a "timeout" answer stays silent: past the sender's request timeout
    silence_s: float
    port: int = 0
    #: every secret the endpoint has had, oldest first, with when we learned it (time.time())
    secrets: list[tuple[str, float]] = field(default_factory=list)
    endpoint_id: str | None = None
    #: the subscription as registered (None: everything)
    event_types: list[str] | None = None
    copies: list[Copy] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    #: set for the drain: a flaky or outage receiver behaves from then on (gone stays gone)
    healed: bool = False
    is_gone: bool = False
    down_since: float | None = None
    _server: asyncio.Server | None = None
    _connections: set[asyncio.StreamWriter] = field(default_factory=set)
    _unverified: list[tuple[Copy, bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.name}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.down_since = None

    async def go_down(self, *, outage: bool = True) -> None:
        """Stop listening and cut every open connection: the subscriber's host is gone."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
        self.down_since = time.monotonic()
        if outage:
            self.answers["down"] += 1

    async def come_up(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.go_down(outage=False)

    def learn_secret(self, endpoint_id: str, secret: str) -> None:
        """The endpoint was registered, or its secret rotated: check again what arrived signed
        with a secret we did not know yet (what was verified stays verified)."""
        self.endpoint_id = endpoint_id
        self.secrets.append((secret, time.time()))
        pending, self._unverified = self._unverified, []
        for copy, body, headers in pending:
            self._check(copy, body, headers)

    def _check(self, copy: Copy, body: bytes, headers: dict[str, str]) -> None:
        """Record which known secrets verify ``copy``; keep it for later if none does (yet)."""
        copy.verified_by = [
            i for i, (secret, _) in enumerate(self.secrets) if _verifies(secret, body, headers)
        ]
        if not copy.verified_by:
            self._unverified.append((copy, body, headers))

    def records(self) -> list[dict[str, object]]:
        """Every copy, for ``receivers.jsonl`` (the evidence behind the delivery figures)."""
        return [{"receiver": self.name, "endpoint_id": self.endpoint_id, **asdict(c)}
                for c in self.copies]  # fmt: skip

    def _decide(self) -> str:
        if self.profile is Profile.GONE:
            if not self.is_gone and len(self.copies) > 20 and self.rng.random() < GONE_CHANCE:
                self.is_gone = True
            return "410" if self.is_gone else "200"
        if self.profile is Profile.FLAKY and not self.healed:
            kinds = [kind for kind, _ in FLAKY_ANSWERS]
            return self.rng.choices(kinds, [weight for _, weight in FLAKY_ANSWERS])[0]
        return self.rng.choice(("200", "200", "200", "202", "204"))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection is to be dropped."""
        line = await reader.readline()
        if not line:
            return False
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if not 0 <= length <= MAX_BODY:
            return False
        body = await reader.readexactly(length)
        answer = self._decide()
        copy = Copy(
            webhook_id=headers.get("webhook-id", ""),
            body_sha256=hashlib.sha256(body).hexdigest(),
            event_type=_event_type(body),
            answer=answer,
            at=time.time(),
        )
        self._check(copy, body, headers)
        self.copies.append(copy)
        self.answers[answer] += 1
        if answer == "close":
            return False
        if answer == "timeout":
            await asyncio.sleep(self.silence_s)
            return False
        if answer == "slow":
            await asyncio.sleep(0.5)
            answer = "200"
        status = int(answer)
        extra = f"Retry-After: {self.rng.choice((1, 2, 3))}\r\n" if status == 429 else ""
        reply = b"" if status == 204 else f"answer {status}".encode()  # 204: never a body
        sized = "" if status == 204 else f"Content-Length: {len(reply)}\r\n"
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n{extra}{sized}\r\n".encode()
            + reply
        )
        await writer.drain()
        copy.accepted = 200 <= status < 300
        return True


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """The reference implementation's verdict (signature and a 5-minute timestamp window)."""
    try:
        Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError):
        return False
    return True


def _event_type(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    kind: object = parsed.get("type") if isinstance(parsed, dict) else None
    return kind if isinstance(kind, str) else None
