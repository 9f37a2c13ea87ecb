from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.servers import serve_app


async def _hello(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_serve_app_answers_on_loopback() -> None:
    app = Starlette(routes=[Route("/", _hello)])
    async with serve_app(app) as base, httpx.AsyncClient() as client:
        assert base.startswith("http://127.0.0.1:")
        assert (await client.get(base + "/")).text == "hello"
