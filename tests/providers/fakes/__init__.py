"""Fakes of the external providers, run on real loopback ports by the adapter tests.

Each fake is a small Starlette app that follows its provider's documented request and response
shapes, validates what it is sent the way the provider says it does, records every request for
the test to inspect, and can be told to answer the next request with anything at all (an error
code, a garbled body) or to be slow.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request, "Recorded"], Awaitable[Response]]


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it (header names lower-case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Canned:
    """An answer to give instead of the fake's own."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeUpstream:
    """What every fake shares: the API key it wants, its requests, its canned answers, its tasks."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        #: seconds every request waits before it is answered (to provoke client timeouts)
        self.delay_s = 0.0
        self._canned: deque[Canned] = deque()

    def answer_next(
        self,
        status: int,
        body: object = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next request with ``status`` and ``body`` (JSON) or ``raw`` bytes."""
        content = raw if raw is not None else json.dumps(body).encode()
        self._canned.append(Canned(status, content, dict(headers or {})))

    def reset(self) -> None:
        """Forget everything: one served fake is shared by the tests of a module."""
        self.requests.clear()
        self.tasks.clear()
        self._canned.clear()
        self.delay_s = 0.0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def new_id(self, prefix: str) -> str:
        return prefix + secrets.token_hex(8)

    def authorized(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {self.api_key}"

    def route(self, path: str, handler: Handler, method: str) -> Route:
        """A route that records, waits, and prefers a canned answer to ``handler``."""

        async def endpoint(request: Request) -> Response:
            recorded = Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
            )
            self.requests.append(recorded)
            # taken on arrival, so a request still sleeping from an earlier test takes nothing
            canned = self._canned.popleft() if self._canned else None
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if canned is not None:
                headers = {"content-type": "application/json", **canned.headers}
                return Response(canned.body, status_code=canned.status, headers=headers)
            return await handler(request, recorded)

        return Route(path, endpoint, methods=[method])

    def app(self) -> Starlette:
        return Starlette(routes=self.routes())

    def routes(self) -> list[Route]:
        raise NotImplementedError


def reply(body: object, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)
