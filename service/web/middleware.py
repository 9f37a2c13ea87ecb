"""Per-request context: a request id on every log line and response, and one access log line
(which also carries what a handler bound to the context, e.g. a callback's outcome).

A pure ASGI middleware (not ``BaseHTTPMiddleware``) so it adds no task hop or body buffering.
"""

from __future__ import annotations

import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.clock import system_clock
from service.core.ids import new_id
from service.logs import get_logger

log = get_logger("taskhook.access")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def loggable_path(path: str) -> str:
    """The path as logs may show it: callback tokens are credentials and are cut off."""
    if path.startswith("/callbacks/"):
        provider = path.split("/")[2] if path.count("/") >= 2 else ""
        return f"/callbacks/{provider}/[redacted]"
    return path


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.fullmatch(given) else new_id("req", system_clock())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=loggable_path(scope["path"]),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
