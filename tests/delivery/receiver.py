"""A real webhook receiver for tests: a Starlette app on a loopback port that records what it
gets and answers as each path's script says."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``script[path]`` is a list of answers, used in turn (the last one repeats): an int status,
    ``("status", {"header": "value"})``, ``"hang"`` (never answers until released), or
    ``"sleep:S"``."""

    script: dict[str, list[object]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _turns: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        self.received.append(Received(path, dict(request.headers), body))
        answers = self.script.get(path, [200])
        turn = self._turns[path]
        self._turns[path] += 1
        answer = answers[min(turn, len(answers) - 1)]
        if answer == "hang":
            await self.release.wait()
            return Response(status_code=200)
        if isinstance(answer, str) and answer.startswith("sleep:"):
            await asyncio.sleep(float(answer.removeprefix("sleep:")))
            return Response(status_code=200)
        if isinstance(answer, tuple):
            status, headers = answer
            return Response(status_code=int(status), headers=dict(headers))
        assert isinstance(answer, int)
        return Response(f"answer {answer}", status_code=answer)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST", "GET"])])
