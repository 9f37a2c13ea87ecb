"""Run an ASGI app on a real loopback port (uvicorn, ephemeral port) for the length of a test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


def bind_loopback() -> socket.socket:
    """A socket bound to a free loopback port: for apps that must know their port up front."""
    # IPPROTO_TCP given explicitly: asyncio only sets TCP_NODELAY on sockets that name it,
    # and without it every keep-alive request waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    sock: socket.socket | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (on ``sock``, or a free port); yields the base URL."""
    sock = sock or bind_loopback()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan=lifespan, loop="asyncio", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
