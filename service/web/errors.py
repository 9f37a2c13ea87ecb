"""Map errors to the contract's shape, once, at the edge.

``{"error": {"code": "snake_case", "message": "human sentence", "field": "name|null"}}``
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import RateLimited, StoreBusy, StoreUnavailable, TaskhookError, Unauthorized
from service.logs import get_logger

log = get_logger("taskhook.web")

_HTTP_CODES = {
    400: "malformed_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status)


async def taskhook_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TaskhookError)
    response = JSONResponse(exc.to_dict(), status_code=exc.status_code)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, StoreBusy):
        response.headers["Retry-After"] = "1"
    if isinstance(exc, StoreUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, StoreBusy | StoreUnavailable):  # the caller retries; not our bug
        log.warning("request.deferred", code=exc.code, error=exc.message)
    elif exc.status_code >= 500:
        log.error("request.failed", code=exc.code, error=exc.message)
    return response


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = {
        404: "No such route.",
        405: "This route does not accept that method.",
    }.get(exc.status_code, str(exc.detail))
    response = error_response(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error(_request: Request, exc: Exception) -> Response:
    log.error("request.crashed", exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


EXCEPTION_HANDLERS = {
    TaskhookError: taskhook_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
