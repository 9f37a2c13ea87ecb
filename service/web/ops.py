"""Operations: liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.logs import get_logger
from service.web.context import services

log = get_logger("taskhook.ops")


async def healthz(_request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database takes writes; a load balancer should stop sending traffic when it does not."""
    try:
        await services(request).store.check_writable()
    except Exception as exc:
        log.warning("readyz.failed", error=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "not writable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "writable"})
