"""A thin client for taskhook's HTTP API that never raises for a missing answer.

``web`` is killed on purpose during the soak, so "no answer" (refused, reset, timed out) is an
ordinary outcome to be counted and, for submissions, retried; it is kept apart from every real
status code, because the checks judge status codes ("never a 5xx for bad input") and must not
mistake a killed process for a server error.

A 429 ``rate_limited`` is waited out here, for every client of the soak alike: the request is
sent again, unchanged (the same Idempotency-Key), after the ``Retry-After`` it named. Each one
is counted, and one that breaks the contract (no whole-second ``Retry-After``, no
``RateLimit-*`` headers) is kept as a problem and handed back as it came.

A 503 ``store_unavailable`` (the database went away: the soak restarts PostgreSQL mid-run) is
waited out the same way, on its own budget: nothing was done, so the same request goes again
after its ``Retry-After``. One without a whole-second ``Retry-After`` is a problem.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

#: answers after which a request is safe to send again: nothing was done, or it was a read
BUSY = frozenset({503})
BUSY_OR_DOWN = frozenset({503, None})
#: the most one request waits out in 429s before its last answer is handed back
RATE_LIMITED_BUDGET_S = 30.0
#: the most one request waits out a database that is down (a restart takes seconds)
UNAVAILABLE_BUDGET_S = 60.0
LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


@dataclass(frozen=True)
class Answer:
    #: None: no answer at all (the process was down or died mid-request)
    status: int | None
    body: Any = None
    headers: dict[str, str] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def code(self) -> str | None:
        error = self.field("error")
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class Unavailable:
    """What the database's absence did to the soak's requests."""

    #: 503 store_unavailable answers waited out, and the seconds spent waiting
    answers: int = 0
    waited_s: float = 0.0
    #: by route (method and first path segment after /v1), to show who saw them
    routes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


@dataclass
class Limited:
    """What the rate limit did to the soak's requests."""

    #: 429 rate_limited answers waited out, and the seconds spent waiting
    answers: int = 0
    waited_s: float = 0.0
    #: 2xx answers to /v1 checked for their RateLimit-* headers
    quotas_seen: int = 0
    problems: list[str] = field(default_factory=list)


class Api:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self.limited = Limited()
        self.unavailable = Unavailable()

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        """One request, sent again while it is rate limited. ``body`` is sent as JSON;
        ``content`` as raw bytes with whatever ``headers`` say (the garbage cases need both)."""
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        if body is not None:
            content = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        give_up = time.monotonic() + RATE_LIMITED_BUDGET_S
        outage_over = time.monotonic() + UNAVAILABLE_BUDGET_S
        while True:
            answer = await self._once(method, path, content, sent, params)
            down = self._store_unavailable(answer, f"{method} {path}")
            if down is not None and time.monotonic() + down <= outage_over:
                self.unavailable.answers += 1
                self.unavailable.waited_s += down
                await asyncio.sleep(down)
                continue
            wait = self._rate_limited(answer, f"{method} {path}")
            if wait is None or time.monotonic() + wait > give_up:
                return answer
            self.limited.answers += 1
            self.limited.waited_s += wait
            await asyncio.sleep(wait)

    async def _once(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str],
        params: dict[str, str] | None,
    ) -> Answer:
        try:
            response = await self._client.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.TransportError as exc:
            return Answer(None, error=type(exc).__name__)
        except httpx.InvalidURL as exc:
            return Answer(None, error=f"invalid url: {exc}")
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = response.text
        return Answer(response.status_code, parsed, dict(response.headers))

    def _store_unavailable(self, answer: Answer, what: str) -> int | None:
        """The seconds to wait if ``answer`` is a well-formed 503 store_unavailable."""
        if answer.status != 503:
            return None
        # a HEAD answer has no body to name its code: its Retry-After is all it can show
        head = what.startswith("HEAD ") and "retry-after" in (answer.headers or {})
        if answer.code != "store_unavailable" and not head:
            return None
        self.unavailable.routes[_route(what)] += 1
        retry_after = (answer.headers or {}).get("retry-after", "")
        if not retry_after.isdigit() or int(retry_after) < 1:
            self.unavailable.problems.append(f"{what} → 503 with Retry-After {retry_after!r}")
            return None
        return int(retry_after)

    def _rate_limited(self, answer: Answer, what: str) -> int | None:
        """The seconds to wait if ``answer`` is a well-formed 429 rate_limited; checks the
        RateLimit-* headers of a /v1 success on the way."""
        headers = answer.headers or {}
        if answer.ok and what.split(" ", 1)[1].startswith("/v1/"):
            self.limited.quotas_seen += 1
            if not all(name in headers for name in LIMIT_HEADERS):
                self.limited.problems.append(f"{what} → {answer.status} without RateLimit-*")
        if answer.status != 429 or answer.code != "rate_limited":
            return None
        retry_after = headers.get("retry-after", "")
        if not retry_after.isdigit() or int(retry_after) < 1:
            self.limited.problems.append(f"{what} → 429 with Retry-After {retry_after!r}")
            return None
        if headers.get("ratelimit-remaining") != "0":
            self.limited.problems.append(f"{what} → 429 with RateLimit-Remaining missing or > 0")
        return int(retry_after)

    async def settled(
        self, method: str, path: str, *, retry_on: frozenset[int | None], **kwargs: Any
    ) -> Answer:
        """``call``, repeated while the answer is one of ``retry_on`` (``None``: no answer; 503:
        the database was busy and nothing was written), for about 30 s at most."""
        for _ in range(60):
            answer = await self.call(method, path, **kwargs)
            if answer.status not in retry_on:
                return answer
            await asyncio.sleep(0.5)
        return answer

    async def pages(self, path: str, key: str, params: dict[str, str] | None = None) -> list[Any]:
        """Every item of a paginated list (``{"data", "next_cursor"}``), following cursors."""
        items: list[Any] = []
        query = {"limit": "100", **(params or {})}
        while True:
            answer = await self.settled("GET", path, retry_on=BUSY_OR_DOWN, key=key, params=query)
            if answer.status != 200 or not isinstance(answer.body, dict):
                raise RuntimeError(f"GET {path}: {answer.status} {answer.body!r}"[:500])
            items.extend(answer.body["data"])
            cursor = answer.body.get("next_cursor")
            if not cursor:
                return items
            query = {**query, "cursor": cursor}


def _route(what: str) -> str:
    """``POST /v1/tasks/abc`` → ``POST /v1/tasks``; ``POST /callbacks/x`` → ``POST /callbacks``."""
    method, path = what.split(" ", 1)
    parts = path.split("?", 1)[0].split("/")
    keep = 3 if len(parts) > 2 and parts[1] == "v1" else 2
    return f"{method} {'/'.join(parts[:keep])}"
