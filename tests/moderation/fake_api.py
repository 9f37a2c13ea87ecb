"""A fake of an OpenAI-compatible moderation API (``POST /v1/moderations``), served on loopback.

A test sets what it answers (``answer``), so that prompts stay plain words the rules allow:

- ``"clean"``: not flagged, every category false;
- ``"flag"``: flagged, with the categories in ``flags`` true;
- ``"status"``: ``status``, with an error body in OpenAI's shape;
- ``"slow"``: waits (until released at teardown) before answering, to outlast the timeout;
- ``"garbage"``: 200 with a body that is not JSON; ``"shapeless"``: 200, ``{"results": []}``;
- ``"redirect"``: a 307 to another path on this server.

It keeps every request it received (headers and JSON body) for the test to look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from service.moderation.external import OPENAI_CATEGORIES
from tests.servers import serve_app

PATH = "/v1/moderations"
API_KEY = "sk-test-moderation-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


@dataclass
class FakeModerationApi:
    url: str = ""
    answer: str = "clean"
    flags: tuple[str, ...] = ()
    status: int = 500
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def moderate(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(dict(request.headers), body))
        if self.answer == "status":
            error = {"error": {"message": "overloaded", "type": "server_error"}}
            return JSONResponse(error, status_code=self.status)
        if self.answer == "slow":
            await self.release.wait()
        if self.answer == "garbage":
            return PlainTextResponse('{"results": [{"flagged": tr')
        if self.answer == "shapeless":
            return JSONResponse({"id": "modr-1", "results": []})
        if self.answer == "redirect":
            return RedirectResponse("/elsewhere", status_code=307)
        names = self.flags if self.answer == "flag" else ()
        categories = dict.fromkeys(OPENAI_CATEGORIES, False)
        categories.update(dict.fromkeys(names, True))
        result = {
            "flagged": bool(names),
            "categories": categories,
            "category_scores": {name: 0.9 if on else 0.01 for name, on in categories.items()},
        }
        return JSONResponse({"id": "modr-1", "model": body.get("model"), "results": [result]})

    async def elsewhere(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), None))
        return JSONResponse({"results": [{"flagged": False, "categories": {}}]})


@asynccontextmanager
async def fake_moderation_api() -> AsyncIterator[FakeModerationApi]:
    fake = FakeModerationApi()
    app = Starlette(
        routes=[
            Route(PATH, fake.moderate, methods=["POST"]),
            Route("/elsewhere", fake.elsewhere, methods=["POST"]),
        ]
    )
    async with serve_app(app, lifespan="off") as base:
        fake.url = base + PATH
        try:
            yield fake
        finally:
            fake.release.set()  # a slow answer still pending finishes, so the server can stop
