"""Operations: liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import StoreBusy, StoreUnavailable
from service.logs import get_logger
from service.web.context import services

log = get_logger("taskhook.ops")


async def healthz(_request: Request) -> Response:
    """Liveness: the process is up and serving. It does not look at the database: a database
    outage is readiness's to report, and a restart of this process would not end it."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database takes writes; a load balancer should stop sending traffic when it does not.
    Not ready is a 503 in the error shape (``store_unavailable``, or ``store_busy`` for a
    SQLite write lock held too long) with ``Retry-After``: the service reconnects by itself."""
    try:
        await services(request).store.check_writable()
    except Exception as exc:
        log.warning("readyz.failed", error=type(exc).__name__)
        failure = (
            exc
            if isinstance(exc, StoreBusy | StoreUnavailable)
            else StoreUnavailable("The database is not writable.")
        )
        body = {**failure.to_dict(), "status": "unavailable", "database": "not writable"}
        retry_after = str(getattr(failure, "retry_after", 1))
        return JSONResponse(body, status_code=503, headers={"Retry-After": retry_after})
    return JSONResponse({"status": "ok", "database": "writable"})
