"""A thin client for taskhook's HTTP API that never raises for a missing answer.

``web`` is killed on purpose during the soak, so "no answer" (refused, reset, timed out) is an
ordinary outcome to be counted and, for submissions, retried; it is kept apart from every real
status code, because the checks judge status codes ("never a 5xx for bad input") and must not
mistake a killed process for a server error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

#: answers after which a request is safe to send again: nothing was done, or it was a read
BUSY = frozenset({503})
BUSY_OR_DOWN = frozenset({503, None})


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
        """One request. ``body`` is sent as JSON; ``content`` as raw bytes with whatever
        ``headers`` say (the garbage cases need both)."""
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        if body is not None:
            content = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            response = await self._client.request(
                method, path, content=content, headers=sent, params=params
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
