"""Rate limits in the OpenAPI document: every ``/v1`` operation may answer 429, and every answer
to a valid key carries the ``RateLimit-*`` headers (``service.web.ratelimit``).

Applied to the finished paths, so an operation added later is described too.
"""

from __future__ import annotations

from typing import Any

from service.web.openapi_schemas import Schema, error_response

_COUNT = {"type": "integer", "minimum": 0}
#: present whenever [api] rate_limit is on and the key was valid (not on a 401)
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    "RateLimit-Limit": {
        "description": "Requests the key may make at once (the burst).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Remaining": {
        "description": "Requests the key may still make now.",
        "schema": _COUNT,
    },
    "RateLimit-Reset": {
        "description": "About how many seconds until a request is freed (0: no wait).",
        "schema": _COUNT,
    },
    "RateLimit-Policy": {
        "description": "The limit and its window in seconds: `200;w=2` is 200 per 2 s.",
        "schema": {"type": "string", "pattern": "^[0-9]+;w=[0-9]+$"},
    },
}
_RETRY_AFTER = {
    "description": "Whole seconds to wait before the next request is let through.",
    "schema": {"type": "integer", "minimum": 1},
}
#: operations that may also refuse for a reason other than the request rate
_OTHER_429 = {
    ("/v1/tasks", "post"): (
        "rate_limited (with Retry-After), or too_many_tasks: the account already has"
        " max_in_flight_per_account tasks queued, submitted or running (no Retry-After:"
        " submit again when one finishes)"
    ),
}


def with_rate_limits(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with a 429 on each ``/v1`` operation and the headers on each of its answers
    but the 401 (an unknown key has no budget to report). Copies what it changes: response
    objects are shared between operations."""
    return {
        path: {
            method: _limited(path, method, op) if isinstance(op, dict) and "responses" in op else op
            for method, op in item.items()
        }
        if path.startswith("/v1/")
        else item
        for path, item in paths.items()
    }


def _limited(path: str, method: str, operation: Schema) -> Schema:
    other = _OTHER_429.get((path, method))
    refusal = error_response(other or "rate_limited: this key made too many requests")
    refusal["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": other is None}}
    responses = {**operation["responses"], "429": refusal}
    return {
        **operation,
        "responses": {
            status: response
            if status == "401"
            else {**response, "headers": {**RATE_LIMIT_HEADERS, **response.get("headers", {})}}
            for status, response in responses.items()
        },
    }
